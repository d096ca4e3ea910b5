"""Check a backup: fetch its parts (checksums first) into a scratch place, restore its dump, compare with the manifest.

Shared by restore (restore.py) and by the production copy (production_copy.py), below both.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reconciler.data.backup import (
    Manifest,
    database_facts,
    key_mismatch,
    load_manifest,
    part_key,
    pg_environ,
    read_part,
    reading_key,
    resolve,
)
from reconciler.data.backup_crypto import BackupKey, SealBroken, SealKeyMismatch
from reconciler.data.scratch import scratch_name
from reconciler.errors import OdooOpsError
from reconciler.executors.storage import ObjectStore, store_for

if TYPE_CHECKING:
    from reconciler.data.context import DataContext


def _corrupt(env: str, backup_id: str, part: str, key: str, why: str) -> OdooOpsError:
    return OdooOpsError(
        "BACKUP_CORRUPT", f"backup {backup_id} of {env} is corrupt: the {part} ({key}) {why}",
        f"use another backup (odooops db backups {env}); nothing was restored and the live data is untouched",
        {"backup": backup_id, "part": part, "key": key})


@contextmanager
def _scratch_dir(prefix: str) -> Iterator[Path]:
    """A temporary directory for downloaded parts; running out of space there is named as such."""
    where = tempfile.gettempdir()
    try:
        with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
            yield Path(tmp)
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        raise OdooOpsError(
            "RESTORE_DISK_FULL", f"{where} ran out of space while the backup was fetched for checking ({exc})",
            f"free space in {where}, or point TMPDIR of the odooops server at a larger disk, then retry; "
            "nothing was restored and the live data is untouched", {"tmpdir": where}) from exc


def _temp_file(tmp: Path) -> Path:
    fd, name = tempfile.mkstemp(dir=tmp, prefix="obj-")
    os.close(fd)
    return Path(name)


def _fetch(store: ObjectStore, m: Manifest, part: str, entry: dict[str, Any], dest: Path | None,
           key: BackupKey | None) -> None:
    """Stream one part out of the store into dest (None: only checked), decrypting and authenticating a sealed
    one, then check its SHA-256. Always a copy: a hardlink into a filestore would share its inode's mode and
    owner with the live files (Odoo's user, 0644), opening the store's object to them."""
    obj = part_key(entry)
    try:
        if dest is None:
            digest = read_part(store, entry, lambda _data: None, key)
        else:
            dest.parent.mkdir(parents=True, exist_ok=True)
            with open(dest, "wb") as out:
                digest = read_part(store, entry, out.write, key)
    except OdooOpsError as exc:
        if exc.code == "BACKUP_OBJECT_MISSING":
            raise _corrupt(m.env, m.id, part, obj, "is missing from the store") from None
        raise
    except SealKeyMismatch as exc:
        raise key_mismatch(m.env, m.id, exc) from None
    except SealBroken as exc:
        raise _corrupt(m.env, m.id, part, obj, f"is refused: {exc}; it was changed after the backup wrote it") from None
    if digest != entry["sha256"]:
        raise _corrupt(m.env, m.id, part, obj,
                       f"has SHA-256 {digest[:12]}…, the manifest says {entry['sha256'][:12]}… (checksum mismatch)")


def check_and_fetch(store: ObjectStore, m: Manifest, tmp: Path, filestore: Path | None = None,
                    link: bool = True) -> Path:
    """Check every part (authenticated decryption, then SHA-256); returns the dump, decrypted into a file in
    tmp for pg_restore. With `filestore`, the files are written there. `link` is accepted for callers and
    ignored: parts are always copied out (see _fetch), never hardlinked."""
    key = reading_key(m)
    for rel, f in sorted(m.files.items()):
        _fetch(store, m, f"filestore file {rel}", f, filestore / rel if filestore is not None else None, key)
    dump = _temp_file(tmp)
    _fetch(store, m, "database dump", m.dump, dump, key)
    return dump


def pg_restore(ctx: DataContext, dump: Path, db: str, owner: str | None, jobs: int = 1) -> None:
    """A new database owned by `owner` (None: the platform), reachable by that role alone from the start
    (Postgres.create), and pg_restore into it as that role (--role), no ownership or ACLs from the dump;
    `jobs` > 1 loads tables and builds indexes in parallel (a custom-format dump file allows it)."""
    ctx.pg.create(db, owner)
    cmd = [ctx.host.pg_tool("pg_restore"), "--no-owner", "--no-acl", "--exit-on-error", "--dbname", db]
    if owner:
        cmd.append(f"--role={owner}")
    if jobs > 1:
        cmd.append(f"--jobs={jobs}")
    proc = subprocess.run([*cmd, str(dump)], capture_output=True, text=True, env=pg_environ(ctx), check=False)
    if proc.returncode != 0:
        raise OdooOpsError("BACKUP_RESTORE_FAILED", f"pg_restore into {db} exited with {proc.returncode}: "
                           f"{proc.stderr.strip()[-500:]}",
                           "fix the cause named above (disk space? bash scripts/services.sh status) and retry; "
                           "the live database is untouched", {"database": db})


def _drop_scratch(ctx: DataContext, db: str, *dirs: Path) -> None:
    with contextlib.suppress(OdooOpsError):
        ctx.pg.drop(db)
    for d in dirs:
        shutil.rmtree(d, ignore_errors=True)


def facts_problems(m: Manifest, facts: dict[str, Any]) -> list[str]:
    """How a restored database (database_facts) differs from what its manifest says; [] when it matches."""
    problems = []
    if len(facts["modules"]) != len(m.modules):
        problems.append(f"{len(facts['modules'])} installed modules, the manifest lists {len(m.modules)}")
    if facts["base_version"] != m.base_version:
        problems.append(f"base version {facts['base_version']}, the manifest says {m.base_version}")
    if not facts["uuid"] or (m.database_uuid and facts["uuid"] != m.database_uuid):
        problems.append(f"database.uuid is {facts['uuid']!r}, the manifest says {m.database_uuid!r}")
    return problems


def verify_backup(ctx: DataContext, env: str, backup_id: str) -> dict[str, Any]:
    """Re-check every checksum, restore into `oo_verify_*`, compare with the manifest; always dropped."""
    store = store_for(ctx.host, ctx.secrets)
    m = load_manifest(store, ctx.key(env), resolve(ctx, env, backup_id, store))
    timings: dict[str, float] = {}
    db = scratch_name("verify")
    t = time.monotonic()
    with _scratch_dir("odooops-verify-") as tmp:
        dump = check_and_fetch(store, m, tmp)
        timings["checksums"] = round(time.monotonic() - t, 3)
        try:
            t = time.monotonic()
            pg_restore(ctx, dump, db, None)
            timings["restore"] = round(time.monotonic() - t, 3)
            facts = database_facts(ctx, db)
        finally:
            _drop_scratch(ctx, db)
    problems = facts_problems(m, facts)
    if problems:
        raise OdooOpsError("BACKUP_VERIFY_FAILED", f"backup {m.id} of {env} restores, but: {'; '.join(problems)}",
                           f"use another backup (odooops db backups {env}) and report this one",
                           {"backup": m.id, "problems": problems})
    return {"backup": m.id, "env": env, "ok": True, "database": db, "dropped": True,
            "objects": 1 + len(m.files), "bytes": m.sizes.get("total"), "modules": len(facts["modules"]),
            "base_version": facts["base_version"], "uuid": facts["uuid"], "seconds": timings}


def _owner_of(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_uid, st.st_gid


def _chown_tree(root: Path, owner: tuple[int, int]) -> None:
    for dirpath, _, filenames in os.walk(root):
        os.chown(dirpath, *owner)
        for name in filenames:
            os.chown(os.path.join(dirpath, name), *owner)
            os.chmod(os.path.join(dirpath, name), 0o644)
