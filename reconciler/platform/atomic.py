"""Replace a file atomically: a temporary file beside it, its mode (and owner) set before any byte is
written, flushed to disk, then renamed over the target. A crash leaves the old file or the new one."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_atomic(path: Path, data: str | bytes, mode: int = 0o600, *, owner: tuple[int, int] | None = None,
                 dir_mode: int | None = 0o700, durable: bool = True) -> None:
    """dir_mode: create missing parents with it (None: the parent must exist). owner: (uid, gid), applied
    when running as root. durable=False skips the fsync (for files that are cheap to lose)."""
    if dir_mode is not None:
        path.parent.mkdir(parents=True, exist_ok=True, mode=dir_mode)
    raw = data.encode() if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-")
    try:
        os.fchmod(fd, mode)
        if owner is not None and os.geteuid() == 0:
            os.fchown(fd, *owner)
        with os.fdopen(fd, "wb") as fh:
            fh.write(raw)
            fh.flush()
            if durable:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
