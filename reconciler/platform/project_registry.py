"""The installation's projects: name, repository and naming scheme, one SQLite file in the state directory.

A project is registered the first time it is named (`--project NAME` with `--repo`). The project that takes
over an installation made before projects keeps its resources' names (scheme `legacy`, docs/adr/0037): it is
the first project named for a repository whose state already holds environments. Every other project is
`namespaced`. A name stays bound to its repository: naming it with another one is refused, so two
inputs that normalise to one name ("Acme", "acme") cannot take each other's resources.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from reconciler.core.projects import ProjectName
from reconciler.errors import OdooOpsError

FILE = "projects.sqlite"
Scheme = Literal["legacy", "namespaced"]


@dataclass(frozen=True)
class Registered:
    name: ProjectName
    location: str
    scheme: Scheme
    created_at: float

    @property
    def naming(self) -> ProjectName | None:
        """What resource names derive from: None for the legacy project (today's names)."""
        return None if self.scheme == "legacy" else self.name

    def to_json(self) -> dict[str, object]:
        return {"name": self.name.value, "location": self.location, "scheme": self.scheme,
                "created_at": self.created_at}


class ProjectRegistry:
    def __init__(self, state_dir: Path) -> None:
        self.path = Path(state_dir) / FILE

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with closing(sqlite3.connect(self.path, timeout=30, isolation_level=None)) as db:
            db.execute("CREATE TABLE IF NOT EXISTS projects (name TEXT PRIMARY KEY, location TEXT NOT NULL, "
                       "scheme TEXT NOT NULL CHECK (scheme IN ('legacy', 'namespaced')), created_at REAL NOT NULL)")
            # At most one legacy project: its names are the bare environment names.
            db.execute("CREATE UNIQUE INDEX IF NOT EXISTS one_legacy ON projects (scheme) WHERE scheme = 'legacy'")
            yield db

    def all(self) -> list[Registered]:
        if not self.path.exists():
            return []
        with self._db() as db:
            rows = db.execute("SELECT name, location, scheme, created_at FROM projects ORDER BY name").fetchall()
        return [Registered(ProjectName(r[0]), r[1], r[2], r[3]) for r in rows]

    def get(self, name: ProjectName) -> Registered | None:
        return next((p for p in self.all() if p.name == name), None)

    def resolve(self, text: str, location: str, *, legacy_state: Callable[[], bool]) -> Registered:
        """The project `text` names, registered on first use for `location`. `legacy_state()` (asked only
        then): the state directory already holds environments of `location` made before projects (then,
        unless another project took the installation over, this one does: scheme legacy, nothing renamed)."""
        name = ProjectName.parse(text)
        with self._db() as db:
            row = db.execute("SELECT location, scheme, created_at FROM projects WHERE name = ?",
                             (name.value,)).fetchone()
            if row is not None:  # the common case: a read, no write lock
                return self._check(text, name, location, row)
            db.execute("BEGIN IMMEDIATE")  # two processes naming one new project agree on its scheme
            try:
                row = db.execute("SELECT location, scheme, created_at FROM projects WHERE name = ?",
                                 (name.value,)).fetchone()
                if row is None:
                    has_legacy = db.execute("SELECT 1 FROM projects WHERE scheme = 'legacy'").fetchone()
                    scheme: Scheme = "legacy" if has_legacy is None and legacy_state() else "namespaced"
                    row = (location, scheme, time.time())
                    db.execute("INSERT INTO projects VALUES (?, ?, ?, ?)", (name.value, *row))
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return self._check(text, name, location, row)

    @staticmethod
    def _check(text: str, name: ProjectName, location: str, row: tuple[str, Scheme, float]) -> Registered:
        if row[0] != location:
            shown = f"{text!r}" if text == name.value else f"{text!r} (normalised: {name.value!r})"
            raise OdooOpsError(
                "PROJECT_REPO_MISMATCH",
                f"project {shown} of this installation serves the repository {row[0]}, not {location}",
                f"pass that repository with --project {name.value}, or name this one differently "
                f"(e.g. --project {name.value[:17].rstrip('-')}-2)",
                {"project": name.value, "registered": row[0], "given": location})
        return Registered(name, row[0], row[1], row[2])


__all__ = ["FILE", "ProjectRegistry", "Registered"]
