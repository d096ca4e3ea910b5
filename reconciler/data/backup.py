"""Backups: pg_dump plus filestore, content-addressed in an object store, described by a manifest written last.

Every part and the manifest are sealed with the backup key (data.backup_crypto: AES-256-GCM, streamed);
backups written before that (plain objects under objects/sha256/, a JSON manifest) still restore."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import secrets as pysecrets
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reconciler.core.retention import plan_retention
from reconciler.data.backup_crypto import (
    OBJECT_CONTEXT,
    SCHEME,
    BackupKey,
    SealBroken,
    SealKeyMismatch,
    default_backup_key_file,
    is_sealed,
    manifest_context,
    unseal,
)
from reconciler.errors import OdooOpsError
from reconciler.executors.storage import LocalStore, ObjectStore, disk_full, store_for
from reconciler.platform.host import host_setting
from reconciler.progress import phase

if TYPE_CHECKING:
    from reconciler.data.context import DataContext

SCHEMA = "odooops/backup/v1"
OBJECTS = "objects/sha256/"  # plain objects named by their SHA-256 (backups from before encryption)
SEALED = "objects/aes256gcm/"  # sealed objects named by BackupKey.object_name
REFUSE_PLAIN_ENV = "ODOOOPS_BACKUP_REFUSE_UNENCRYPTED"
_CHUNK = 1 << 20
_ID_TIME = "%Y-%m-%d-%H-%M-%S"
DEFAULT_RETENTION: dict[str, dict[str, int]] = {
    "production": {"daily": 7, "weekly": 4, "monthly": 3}, "staging": {"days": 30}}


@contextmanager
def store_lock(ctx: DataContext, exclusive: bool) -> Iterator[None]:
    """Backups share the store; the sweep holds it alone, so it never deletes an in-flight backup's objects."""
    path = ctx.host.state_dir / "locks" / "backup-store.lock"
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)  # closing releases the flock


def object_key(sha256: str) -> str:
    """Where a plain (pre-encryption) object with this SHA-256 lives."""
    return f"{OBJECTS}{sha256[:2]}/{sha256}"


def sealed_key(key: BackupKey, sha256: str) -> str:
    """Where the sealed object holding content with this SHA-256 lives."""
    name = key.object_name(sha256)
    return f"{SEALED}{name[:2]}/{name}"


def part_key(part: dict[str, Any]) -> str:
    """The store key of a manifest's part (`dump`, or a `files` entry): sealed parts name their object."""
    return str(part.get("object") or object_key(part["sha256"]))


def backup_key(host: Any, store: ObjectStore | None = None, *, create: bool = False) -> BackupKey:
    """The backup key ($ODOOOPS_BACKUP_KEY_FILE, default ~/.config/odooops/backup.key), never inside the
    state directory or a local backup store. create=True (a backup) makes it on first use."""
    outside = [Path(host.state_dir)] + ([store.root] if isinstance(store, LocalStore) else [])
    return BackupKey.from_file(default_backup_key_file(), create=create, outside=outside)


def manifest_key(env: str, backup_id: str) -> str:
    """Where a manifest lives; `env` is the environment's key (its name for the legacy project), unique
    across the installation, so one listing of `backups/` sees every project's manifests (sweep)."""
    return f"backups/{env}/{backup_id}.json"


@dataclass(frozen=True)
class Manifest:
    """What one backup holds; `files` maps a filestore path (relative) to {"sha256", "size"}."""

    id: str
    env: str
    tier: str
    commit: str | None
    created_at: str
    reason: str
    odoo_version: str
    base_version: str
    image: str
    modules: dict[str, str]
    database_uuid: str | None
    dump: dict[str, Any]
    files: dict[str, dict[str, Any]]
    sizes: dict[str, int]
    seconds: float
    schema: str = SCHEMA
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "extra"}
        out.update(self.extra)
        return out

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Manifest:
        if doc.get("schema") != SCHEMA:
            raise OdooOpsError("BACKUP_MANIFEST_INVALID", f"backup manifest schema {doc.get('schema')!r} is not "
                               f"{SCHEMA}", "this backup was written by another OdooOps version: upgrade OdooOps")
        known = set(cls.__dataclass_fields__) - {"extra"}
        return cls(**{k: doc[k] for k in known if k in doc},
                   extra={k: v for k, v in doc.items() if k not in known})

    @property
    def created(self) -> datetime:
        return datetime.fromisoformat(self.created_at)

    def object_keys(self) -> set[str]:
        return {part_key(self.dump)} | {part_key(f) for f in self.files.values()}

    @property
    def sealed(self) -> bool:
        return bool(self.extra.get("encryption"))


def new_backup_id(now: datetime | None = None) -> str:
    """Sortable UTC time plus 4 random hex digits: `2026-02-12-03-00-07-ab12`."""
    return f"{(now or datetime.now(UTC)).strftime(_ID_TIME)}-{pysecrets.token_hex(2)}"


def id_time(backup_id: str) -> datetime:
    """A backup id starts with its UTC creation time, to the second (new_backup_id)."""
    return datetime.strptime(backup_id[:19], _ID_TIME).replace(tzinfo=UTC)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def pg_environ(ctx: DataContext) -> dict[str, str]:
    """The admin's password goes in PGPASSWORD, never on a command line (visible in ps)."""
    host = ctx.host
    return {**os.environ, "PGHOST": host.pg_host, "PGPORT": str(host.pg_port), "PGUSER": host.pg_admin_user,
            "PGPASSWORD": host.pg_admin_password, "PGAPPNAME": "odooops-backup"}


def database_facts(ctx: DataContext, db: str) -> dict[str, Any]:
    """Installed modules, base's version and database.uuid, read from Odoo's own tables."""
    with ctx.pg.connect(db) as conn:
        modules = dict(conn.execute("SELECT name, latest_version FROM ir_module_module "
                                    "WHERE state = 'installed' ORDER BY name").fetchall())
        row = conn.execute("SELECT value FROM ir_config_parameter WHERE key = 'database.uuid'").fetchone()
    base = modules.get("base") or ""
    return {"modules": {k: v or "" for k, v in modules.items()}, "base_version": base,
            "odoo_version": ".".join(base.split(".")[:2]), "uuid": row[0] if row else None}


def _dump(ctx: DataContext, store: ObjectStore, db: str, created: list[str], key: BackupKey) -> dict[str, Any]:
    """pg_dump -Fc streamed through SHA-256 and the sealer into a staging file (only ciphertext touches the
    disk), then stored under the keyed name of its plaintext hash."""
    cmd = [ctx.host.pg_tool("pg_dump"), "--format=custom", "--no-owner", "--no-acl", "--dbname", db]
    h = hashlib.sha256()
    size = 0
    with store.staging_file(".dump") as tmp:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=pg_environ(ctx))
        assert proc.stdout is not None and proc.stderr is not None
        stdout = proc.stdout
        try:
            with open(tmp, "wb") as out:
                sealer = key.sealer(out, OBJECT_CONTEXT)
                for chunk in iter(lambda: stdout.read(_CHUNK), b""):
                    h.update(chunk)
                    size += len(chunk)
                    sealer.write(chunk)
                stored = sealer.close()
                out.flush()
                os.fsync(out.fileno())
        except OSError as exc:
            proc.kill()
            proc.wait()
            if exc.errno in (28, 122):  # ENOSPC, EDQUOT
                raise disk_full(store.description, exc) from exc
            raise
        err = proc.stderr.read().decode("utf-8", "replace")
        if proc.wait() != 0:
            raise OdooOpsError("BACKUP_DUMP_FAILED", f"pg_dump of {db} exited with {proc.returncode}: "
                               f"{err.strip()[-500:]}", "fix the cause named above (is PostgreSQL up? "
                               "bash scripts/services.sh status) and run the backup again", {"database": db})
        digest = h.hexdigest()
        obj = sealed_key(key, digest)
        if not store.exists(obj):
            store.put_file(obj, tmp, move=True)
            created.append(obj)
    return {"sha256": digest, "size": size, "format": "pg_dump-custom", "key": obj, "object": obj,
            "sealed": SCHEME, "stored_size": stored}


def _walk(root: Path) -> Iterator[tuple[str, Path]]:
    if not root.is_dir():
        return
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            path = Path(dirpath, name)
            yield path.relative_to(root).as_posix(), path


def _seal_file(store: ObjectStore, path: Path, key: BackupKey, created: list[str]) -> tuple[str, int, str]:
    """Seal one file into a staging file, hashing what was sealed, and store it: (sha256, size, object)."""
    h = hashlib.sha256()
    size = 0
    with store.staging_file(".obj") as tmp:
        with open(path, "rb") as src, open(tmp, "wb") as out:
            sealer = key.sealer(out, OBJECT_CONTEXT)
            for chunk in iter(lambda: src.read(_CHUNK), b""):
                h.update(chunk)
                size += len(chunk)
                sealer.write(chunk)
            sealer.close()
        digest = h.hexdigest()
        obj = sealed_key(key, digest)
        if not store.exists(obj):
            store.put_file(obj, tmp, move=True)
            created.append(obj)
    return digest, size, obj


def _filestore(store: ObjectStore, root: Path, created: list[str], key: BackupKey
               ) -> tuple[dict[str, dict[str, Any]], int]:
    """Every file stored once by content; returns the file map and the bytes actually uploaded."""
    existing = set(store.list(SEALED))
    files: dict[str, dict[str, Any]] = {}
    new_bytes = 0
    for rel, path in _walk(root):
        try:
            digest, size = sha256_file(path), path.stat().st_size
            obj = sealed_key(key, digest)
            if obj not in existing:
                # Hashed again while sealed: the object's name always matches what it holds.
                digest, size, obj = _seal_file(store, path, key, created)
                new_bytes += size
        except FileNotFoundError:
            continue  # Odoo's garbage collection removed it after the dump: the dump no longer needs it
        files[rel] = {"sha256": digest, "size": size, "object": obj, "sealed": SCHEME}
        existing.add(obj)
    return files, new_bytes


def _check_space(ctx: DataContext, store: ObjectStore, env: str) -> None:
    """Refuse early when a local store plainly cannot hold the dump (ENOSPC is still handled later)."""
    free = store.free_bytes()
    if free is None:
        return
    key = ctx.key(env)
    files = sum(p.stat().st_size for _, p in _walk(ctx.host.filestore_dir(key)))
    # A custom-format dump is compressed: a tenth of the database size is a conservative floor.
    need = ctx.pg.size_bytes(key) // 10 + files // 10
    if need > free:
        raise disk_full(store.description, need=need, free=free)


def create_backup(ctx: DataContext, env: str, *, reason: str = "manual", commit: str | None = None) -> Manifest:
    """Dump the environment's database and filestore into the backup store; the manifest is written last."""
    started = time.monotonic()
    entry = ctx.entry(env)
    store = store_for(ctx.host, ctx.secrets)
    key = backup_key(ctx.host, store, create=True)
    spec = entry.get("container_spec") or {}
    image = (spec.get("containers") or [{}])[0].get("image") or (entry.get("settings") or {}).get("image", "")
    backup_id = new_backup_id(datetime.now(UTC))
    created: list[str] = []
    with store_lock(ctx, exclusive=False):
        return _create(ctx, env, store, key, entry, backup_id, reason, commit, image, created, started)


def _create(ctx: DataContext, env: str, store: ObjectStore, key: BackupKey, entry: dict[str, Any], backup_id: str,
            reason: str, commit: str | None, image: str, created: list[str], started: float) -> Manifest:
    # Microseconds order two backups taken within one second (their ids differ only by the random suffix).
    created_at = datetime.now(UTC)
    try:
        _check_space(ctx, store, env)
        facts = database_facts(ctx, ctx.key(env))
        phase(f"dumping the database of {env}")
        dump = _dump(ctx, store, ctx.key(env), created, key)
        phase(f"storing the filestore of {env}")
        files, new_files = _filestore(store, ctx.host.filestore_dir(ctx.key(env)), created, key)
        phase("writing the manifest")
        fs_bytes = sum(f["size"] for f in files.values())
        manifest = Manifest(
            id=backup_id, env=env, tier=str(entry.get("tier", "")), commit=commit or entry.get("commit"),
            created_at=created_at.isoformat(timespec="microseconds"), reason=reason,
            odoo_version=facts["odoo_version"], base_version=facts["base_version"], image=image,
            modules=facts["modules"], database_uuid=facts["uuid"], dump=dump, files=files,
            sizes={"dump": dump["size"], "filestore": fs_bytes, "files": len(files), "total": dump["size"] + fs_bytes,
                   "new_bytes": (dump["size"] if dump["key"] in created else 0) + new_files},
            seconds=round(time.monotonic() - started, 3),
            extra={"encryption": {"scheme": SCHEME, "key_id": key.id}})
        save_manifest(store, key, ctx.key(env), backup_id, manifest.to_json())
    except BaseException:
        # No manifest references what this backup stored: remove it so nothing partial stays behind.
        for created_key in created:
            with suppress(OdooOpsError):
                store.delete(created_key)
        raise
    return manifest


def save_manifest(store: ObjectStore, key: BackupKey, env: str, backup_id: str, doc: dict[str, Any]) -> None:
    """The manifest sealed and bound to its own key in the store."""
    name = manifest_key(env, backup_id)
    store.put_bytes(name, key.seal_bytes(json.dumps(doc, indent=1).encode(), manifest_context(name)))


def load_manifest(store: ObjectStore, env: str, backup_id: str, key: BackupKey | None = None) -> Manifest:
    """A sealed manifest is opened with the backup key (`key`, else the configured key file); a plain JSON
    one is a backup from before encryption, read as it is unless $ODOOOPS_BACKUP_REFUSE_UNENCRYPTED=1."""
    name = manifest_key(env, backup_id)
    raw = store.get_bytes(name)
    if is_sealed(raw):
        key = key or BackupKey.from_file(default_backup_key_file(), create=False)
        try:
            raw = key.open_bytes(raw, manifest_context(name))
        except SealKeyMismatch as exc:
            raise key_mismatch(env, backup_id, exc) from None
        except SealBroken as exc:
            raise OdooOpsError("BACKUP_CORRUPT", f"the manifest of backup {backup_id} of {env} ({name}) fails "
                               f"authentication: {exc}", f"use another backup: odooops db backups {env}; and "
                               "check who can write the backup store", {"part": "manifest", "key": name}) from None
    elif host_setting("backups.refuse_unencrypted"):
        raise OdooOpsError("BACKUP_UNENCRYPTED_REFUSED", f"backup {backup_id} of {env} is not encrypted and "
                           f"the host refuses unencrypted backups (backups.refuse_unencrypted, {REFUSE_PLAIN_ENV})",
                           f"unset {REFUSE_PLAIN_ENV} and backups.refuse_unencrypted to restore a backup from "
                           "before encryption (its manifest is not authenticated: anyone who could write the "
                           "store could have written it)",
                           {"part": "manifest", "key": name})
    try:
        doc = json.loads(raw)
    except ValueError as exc:
        raise OdooOpsError("BACKUP_CORRUPT", f"the manifest of backup {backup_id} of {env} is not valid JSON",
                           f"use another backup: odooops db backups {env}", {"part": "manifest"}) from exc
    return Manifest.from_json(doc)


def reading_key(m: Manifest) -> BackupKey | None:
    """The backup key when any part of m is sealed (None for a backup from before encryption)."""
    if m.dump.get("sealed") or any(f.get("sealed") for f in m.files.values()):
        return BackupKey.from_file(default_backup_key_file(), create=False)
    return None


def read_part(store: ObjectStore, part: dict[str, Any], write: Callable[[bytes], Any], key: BackupKey | None) -> str:
    """Stream one part (`dump` or a `files` entry) out of the store into write(), decrypted and authenticated
    chunk by chunk when sealed; returns the SHA-256 of what was written (the caller compares it with part's).
    Raises SealBroken / SealKeyMismatch, or BACKUP_OBJECT_MISSING."""
    h = hashlib.sha256()

    def sink(data: bytes) -> None:
        h.update(data)
        write(data)

    with store.open_read(part_key(part)) as src:
        if part.get("sealed"):
            if key is None:
                raise SealBroken("it is sealed and no backup key was given")
            unseal(key, src.read, sink, OBJECT_CONTEXT)
        else:
            for chunk in iter(lambda: src.read(_CHUNK), b""):
                sink(chunk)
    return h.hexdigest()


def key_mismatch(env: str, backup_id: str, exc: SealKeyMismatch) -> OdooOpsError:
    return OdooOpsError(
        "BACKUP_KEY_MISMATCH", f"backup {backup_id} of {env} was encrypted with backup key {exc.found}; the key "
        f"file {default_backup_key_file()} holds key {exc.expected}",
        "point ODOOOPS_BACKUP_KEY_FILE at the key these backups were written with (restore it from your key "
        "backup); nothing was restored", {"backup": backup_id, "found_key_id": exc.found,
                                          "expected_key_id": exc.expected})


def backup_ids(store: ObjectStore, env: str) -> list[str]:
    """The ids of env's backups in the store, newest first (one listing, no manifest read)."""
    prefix = f"backups/{env}/"
    return sorted((k[len(prefix):-5] for k in store.list(prefix) if k.endswith(".json")), reverse=True)


def list_backups(ctx: DataContext, env: str) -> list[Manifest]:
    """Every backup of env, newest first."""
    store = store_for(ctx.host, ctx.secrets)
    folder = ctx.key(env)
    return sorted((load_manifest(store, folder, i) for i in backup_ids(store, folder)), key=lambda m: (m.created, m.id),
                  reverse=True)


def resolve(ctx: DataContext, env: str, id_or_prefix: str, store: ObjectStore | None = None) -> str:
    """The one backup id starting with id_or_prefix (`2026-02-12-03-00` is enough when unique)."""
    store = store or store_for(ctx.host, ctx.secrets)
    ids = backup_ids(store, ctx.key(env))
    matches = [i for i in ids if i.startswith(id_or_prefix)] if id_or_prefix else []
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise OdooOpsError("BACKUP_NOT_FOUND", f"no backup of {env} matches {id_or_prefix!r} "
                           f"(newest: {', '.join(ids[:5]) or 'none'})",
                           f"odooops db backups {env}  # and pass one of the listed ids" if ids else
                           f"odooops db backup {env}  # take one first", {"candidates": ids[:20]})
    raise OdooOpsError("BACKUP_AMBIGUOUS", f"{id_or_prefix!r} matches {len(matches)} backups of {env}: "
                       f"{', '.join(matches[:10])}", f"pass a longer prefix, e.g. --backup={matches[0]}",
                       {"candidates": matches})


def retention_for(entry: dict[str, Any]) -> dict[str, int]:
    settings = entry.get("settings") or {}
    policy = settings.get("backup_retention")
    if policy:
        return dict(policy)
    return DEFAULT_RETENTION.get(str(entry.get("tier")), {"days": 7})


def prune(ctx: DataContext, env: str, now: datetime, policy: dict[str, int] | None = None) -> list[str]:
    """Delete the backups retention does not keep, then every object no remaining manifest references."""
    store = store_for(ctx.host, ctx.secrets)
    if policy is None:
        policy = retention_for(ctx.store.entries().get(env) or {"tier": ""})
    manifests = {m.id: m for m in list_backups(ctx, env)}
    plan = plan_retention({i: m.created for i, m in manifests.items()}, now, policy)
    with store_lock(ctx, exclusive=True):
        for backup_id in plan.prune:
            store.delete(manifest_key(ctx.key(env), backup_id))
        sweep(store)
    return plan.prune


def sweep(store: ObjectStore) -> list[str]:
    """Mark every object referenced by any manifest of any environment, then delete the rest."""
    # Call it under store_lock(exclusive=True): a running backup's objects have no manifest yet.
    objects = store.list("objects/")
    marked: set[str] = set()
    for key in store.list("backups/"):
        if key.endswith(".json"):
            env, backup_id = key[len("backups/"):-5].rsplit("/", 1)
            marked |= load_manifest(store, env, backup_id).object_keys()
    garbage = [k for k in objects if k not in marked]
    for key in garbage:
        store.delete(key)
    return garbage


def is_verified(m: Manifest) -> bool:
    """A backup whose restore was checked (`record_verification`) and passed."""
    check = m.extra.get("verification")
    return bool(m.extra.get("verified_at")) and isinstance(check, dict) and check.get("ok") is True


def record_verification(ctx: DataContext, env: str, backup_id: str, result: dict[str, Any]) -> dict[str, Any]:
    """Keep a passed verification in the manifest (a production destroy accepts a backup verified in the
    last 24 hours; copies of production come from verified backups) and, when it is env's newest
    verified backup, in env's state entry, where the plan reads it. Returns {"verified_at", "verification"}."""
    store = store_for(ctx.host, ctx.secrets)
    key = backup_key(ctx.host, store, create=True)
    m = load_manifest(store, ctx.key(env), backup_id, key)
    now = datetime.now(UTC).isoformat(timespec="seconds")
    verification = {k: result[k] for k in ("ok", "modules", "base_version", "bytes", "seconds") if k in result}
    doc = {**m.to_json(), "verified_at": now, "verification": verification}
    save_manifest(store, key, ctx.key(env), m.id, doc)
    if verification.get("ok") is True:
        known = (ctx.store.entries().get(env) or {}).get("verified_backup") or {}
        created = m.created.timestamp()
        if float(known.get("created_at") or 0) <= created:
            ctx.store.annotate(env, verified_backup={"id": m.id, "created_at": created, "verified_at": now})
    return {"verified_at": now, "verification": verification}


def newest_verified(ctx: DataContext, env: str, max_age_s: float, now: datetime | None = None,
                    store: ObjectStore | None = None) -> Manifest | None:
    """env's newest backup whose verification passed and that is at most max_age_s old (ids are sorted by
    time: only the manifests within the age limit are read)."""
    store = store or store_for(ctx.host, ctx.secrets)
    now = now or datetime.now(UTC)
    for backup_id in backup_ids(store, ctx.key(env)):
        try:
            if (now - id_time(backup_id)).total_seconds() > max_age_s:
                break
        except ValueError:
            continue  # not an id this module wrote
        m = load_manifest(store, ctx.key(env), backup_id)
        if is_verified(m) and (now - m.created).total_seconds() <= max_age_s:
            return m
    return None


__all__ = ["Manifest", "backup_ids", "backup_key", "create_backup", "id_time", "is_verified", "list_backups",
           "load_manifest", "newest_verified", "prune", "read_part", "reading_key", "record_verification", "resolve",
           "sweep"]
