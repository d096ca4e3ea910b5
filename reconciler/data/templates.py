"""Template databases: one initialised Odoo database per (image, module set, demo, version), cloned by new envs."""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import shutil
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from reconciler.core.model import digest
from reconciler.data.filestore import link_tree
from reconciler.platform.atomic import write_atomic
from reconciler.platform.host import host_setting

if TYPE_CHECKING:
    from reconciler.executors.postgres import Postgres

PREFIX = "oo_tpl_"


class Keyed(Protocol):
    """Anything the registry files a template under: a TemplateKey, a production SnapshotKey."""

    @property
    def id(self) -> str: ...


class Dropper(Protocol):
    """The part of executors.postgres.Postgres that eviction needs."""

    def drop(self, db: str) -> Any: ...


@dataclass(frozen=True)
class TemplateKey:
    """What a template's content depends on; anything else (module code) is brought up to date with -u.

    The project is part of the key because module names say nothing about their code: two projects
    with an `acme_sale` must never share a database. External addons are pinned commits outside the
    project's history, so `-u` cannot tell when they moved; they are part of the key too."""

    project_id: str
    image_id: str
    modules: tuple[str, ...]
    demo: bool
    odoo_version: str
    external: tuple[tuple[str, str], ...] = ()

    @classmethod
    def make(cls, project_id: str, image_id: str, modules: Sequence[str], demo: bool, odoo_version: str,
             external: Sequence[tuple[str, str]] = ()) -> TemplateKey:
        return cls(project_id, image_id, tuple(sorted(set(modules))), bool(demo), odoo_version,
                   tuple(sorted((str(n), str(c)) for n, c in external)))

    @property
    def id(self) -> str:
        return digest(self.to_json())[:16]

    def to_json(self) -> dict[str, Any]:
        return {"project_id": self.project_id, "image_id": self.image_id, "modules": list(self.modules),
                "demo": self.demo, "odoo_version": self.odoo_version,
                "external": [list(e) for e in self.external]}


@dataclass
class Template:
    key: str
    db: str
    commit: str  # the project commit whose modules the template holds (-u from here)
    filestore: str
    size_bytes: int
    created_at: float
    last_used: float
    inputs: dict[str, Any] = field(default_factory=dict)
    built_by: str = ""  # the environment whose fresh install it copies

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Template:
        names = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in names})

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def cap_from_env(env: Mapping[str, str] | None = None) -> tuple[int, int]:
    """(bytes, count) caps: the host's limits.template_cap_bytes (default 10 GiB) and
    limits.template_cap_count (5; 0 = off)."""
    return (int(host_setting("limits.template_cap_bytes", env)), int(host_setting("limits.template_cap_count", env)))


def tree_bytes(root: Path) -> int:
    """Bytes under a directory (0 when it does not exist); hardlinked files count once here."""
    total, seen = 0, set()
    if not root.exists():
        return 0
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            st = os.lstat(os.path.join(dirpath, name))
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_size
    return total


class TemplateRegistry:
    """`<state>/templates/registry.json` (atomic writes, flock) and the templates' filestores beside it.

    Only the platform connects to a template (it is owned by the admin role and PUBLIC has no CONNECT);
    environments get FILE_COPY clones of it."""

    def __init__(self, state_dir: Path, cap_bytes: int | None = None, cap_count: int | None = None) -> None:
        self.dir = state_dir / "templates"
        self.path = self.dir / "registry.json"
        env_bytes, env_count = cap_from_env()
        self.cap_bytes = env_bytes if cap_bytes is None else cap_bytes
        self.cap_count = env_count if cap_count is None else cap_count

    @staticmethod
    def new_db_name() -> str:
        return PREFIX + secrets.token_hex(6)

    def filestore_dir(self, db: str) -> Path:
        return self.dir / "filestore" / db

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Serialise read-modify-write of the registry across processes (released by the kernel on death)."""
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.dir / "registry.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def _read(self) -> dict[str, Template]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError):
            # A torn file loses only the index: the oo_tpl_* databases it named are swept as orphans.
            self.path.replace(self.path.with_suffix(f".corrupt-{int(time.time())}"))
            return {}
        return {k: Template.from_json(v) for k, v in (data.get("templates") or {}).items()}

    def _write(self, templates: Mapping[str, Template]) -> None:
        write_atomic(self.path, json.dumps({"schema": "odooops/templates/v1",
                                            "templates": {k: t.to_json() for k, t in sorted(templates.items())}},
                                           indent=1, sort_keys=True) + "\n")

    def all(self) -> list[Template]:
        with self.locked():
            return sorted(self._read().values(), key=lambda t: t.last_used)

    def referenced_dbs(self) -> set[str]:
        """Databases the registry owns (the oo_* sweep must leave them alone)."""
        return {t.db for t in self.all()}

    def lookup(self, key: Keyed, now: float | None = None) -> Template | None:
        """The template for this key, marked as used (LRU order)."""
        with self.locked():
            templates = self._read()
            found = templates.get(key.id)
            if found is not None:
                found.last_used = time.time() if now is None else now
                self._write(templates)
            return found

    def add(self, template: Template) -> Template | None:
        """Register a template; returns the one it replaces under the same key (caller drops it)."""
        with self.locked():
            templates = self._read()
            old = templates.get(template.key)
            templates[template.key] = template
            self._write(templates)
        return old if old is not None and old.db != template.db else None

    def remove(self, key_id: str) -> Template | None:
        with self.locked():
            templates = self._read()
            gone = templates.pop(key_id, None)
            if gone is not None:
                self._write(templates)
            return gone

    def over_cap(self, keep: str | None = None) -> list[Template]:
        """Least recently used templates beyond the count or byte cap (never `keep`, the one just made)."""
        with self.locked():
            ordered = sorted(self._read().values(), key=lambda t: t.last_used)
        victims: list[Template] = []
        total = sum(t.size_bytes for t in ordered)
        count = len(ordered)
        for t in ordered:
            if count <= self.cap_count and total <= self.cap_bytes:
                break
            if t.key == keep:
                continue
            victims.append(t)
            total -= t.size_bytes
            count -= 1
        return victims

    def discard(self, pg: Dropper, template: Template) -> None:
        """Drop a template's database and filestore and forget it."""
        with self.locked():
            templates = self._read()
            if templates.get(template.key) is not None and templates[template.key].db == template.db:
                templates.pop(template.key)
                self._write(templates)
        pg.drop(template.db)
        shutil.rmtree(template.filestore, ignore_errors=True)

    def register(self, pg: Dropper, template: Template) -> list[Template]:
        """Add a just-made template (dropping the one it replaces) and enforce the caps; returns the evicted."""
        replaced = self.add(template)
        if replaced is not None:
            self.discard(pg, replaced)
        return self.evict(pg, keep=template.key)

    def evict(self, pg: Dropper, keep: str | None = None) -> list[Template]:
        """Enforce the caps: drop least recently used templates (database and filestore)."""
        victims = self.over_cap(keep)
        for t in victims:
            self.discard(pg, t)
        return victims


def keep_copy(pg: Postgres, registry: TemplateRegistry, source_db: str, source_fs: Path, *, admin: str, key: str,
              commit: str, inputs: dict[str, Any], built_by: str,
              prepare: Callable[[str], None] | None = None) -> tuple[Template, float, list[Template]]:
    """Copy a database and its filestore (hardlinked) into the registry under `key`; returns the
    template, the seconds of the database copy and the templates evicted to stay under the caps.

    The copy is owned by the platform (the env's role may be dropped while the template lives on)
    and nobody else may connect; `prepare(db)` runs on it before it is registered. On any failure
    nothing is kept and the error is raised."""
    db = registry.new_db_name()
    fs = registry.filestore_dir(db)
    try:
        seconds = pg.clone(source_db, db, owner=admin)  # secured for the platform alone (Postgres.clone)
        pg.reassign_objects(db, admin)
        if prepare is not None:
            prepare(db)
        link_tree(source_fs, fs)
    except BaseException:
        pg.drop(db)
        shutil.rmtree(fs, ignore_errors=True)
        raise
    now = time.time()
    template = Template(key=key, db=db, commit=commit, filestore=str(fs), size_bytes=pg.size_bytes(db) + tree_bytes(fs),
                        created_at=now, last_used=now, inputs=inputs, built_by=built_by)
    return template, seconds, registry.register(pg, template)
