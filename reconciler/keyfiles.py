"""Key files kept outside the state directory: created once (0600, never overwritten), then only read."""

from __future__ import annotations

import base64
import contextlib
import os
import secrets as pysecrets
import tempfile
from collections.abc import Iterable
from pathlib import Path

from reconciler.errors import OdooOpsError
from reconciler.platform.host import host_setting

KEY_BYTES = 32


def default_key_path(setting: str) -> Path:
    """The host's key file `setting` (keys.audit, keys.backup, ...): its variable, else the host file, else
    `$XDG_CONFIG_HOME/odooops/` (~/.config/odooops/), beside the other keys."""
    return Path(host_setting(setting))


def _create_once(path: Path) -> None:
    """Write a new random key with mode 0600 unless the file exists: the key is linked into place, so two
    processes starting at once agree on one key instead of the second silently replacing the first's."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(base64.b64encode(pysecrets.token_bytes(KEY_BYTES)) + b"\n")
            fh.flush()
            os.fsync(fh.fileno())
        with contextlib.suppress(FileExistsError):  # another process made it first: use theirs
            os.link(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def load_key(path: Path, *, what: str, env_var: str, create: bool, outside: Iterable[Path] = ()) -> bytes:
    """The 256-bit key in `path` (base64). create=True makes it when missing (never when it exists).

    `outside`: directories the key must not be in (the state directory, the backup store): whoever can
    write those must not also hold the key that protects them."""
    for root in outside:
        if path.resolve().is_relative_to(Path(root).resolve()):
            raise OdooOpsError(f"{what}_KEY_INSIDE_PROTECTED_DIR", f"the {what.lower()} key {path} is inside {root}",
                               f"keep the key outside {root}: set {env_var} to a path elsewhere (e.g. "
                               f"/etc/odooops/{path.name})", {"key_file": str(path), "directory": str(root)})
    if not path.exists():
        if not create:
            raise OdooOpsError(f"{what}_KEY_MISSING", f"the {what.lower()} key file {path} does not exist",
                               f"restore {path} from your key backup (or point {env_var} at it); without the key "
                               "nothing it protects can be checked or read", {"key_file": str(path)})
        _create_once(path)
    if path.stat().st_mode & 0o077:
        raise OdooOpsError(f"{what}_KEY_PERMISSIONS", f"{path} is readable by other users", f"chmod 600 {path}",
                           {"key_file": str(path)})
    try:
        key = base64.b64decode(path.read_bytes().strip(), validate=True)
    except ValueError:
        key = b""
    if len(key) != KEY_BYTES:
        raise OdooOpsError(f"{what}_KEY_INVALID", f"{path} does not hold a base64 256-bit key",
                           f"restore {path} from your key backup", {"key_file": str(path)})
    return key
