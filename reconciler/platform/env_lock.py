"""One operation per environment at a time, across processes: an apply, a backup, a restore, a clone, a rollback."""

from __future__ import annotations

import fcntl
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from reconciler.errors import OdooOpsError
from reconciler.progress import phase

# Locks this process holds: path -> (thread id, depth). flock belongs to an open file, so a second
# open+flock of the same file by the thread that holds it would wait on itself: a rollback holds
# the lock and runs an apply, which takes the lock again.
_held: dict[str, tuple[int, int]] = {}
_guard = threading.Lock()


def lock_path(state_dir: Path, env: str) -> Path:
    return state_dir / "locks" / f"env-{env}.lock"


def is_busy(state_dir: Path, env: str) -> bool:
    """True when another process or thread holds the environment's lock right now (a hint: it may
    be released a moment later). Used to leave an environment alone while a restore swaps it."""
    path = lock_path(state_dir, env)
    with _guard:
        held = _held.get(str(path))
    if held is not None:
        return held[0] != threading.get_ident()
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing releases the probe's shared lock
    return False


@contextmanager
def env_lock(state_dir: Path, env: str, operation: str, wait_s: float = 600.0) -> Iterator[None]:
    """Hold the environment's lock; the file names the holder so a refusal can say who has it.

    flock is released by the kernel when the holder dies, so a killed apply never leaves the
    environment locked for the next run. The thread that holds the lock may take it again."""
    path = lock_path(state_dir, env)
    key = str(path)
    me = threading.get_ident()
    with _guard:
        held = _held.get(key)
        if held is not None and held[0] == me:
            _held[key] = (me, held[1] + 1)
            reentered = True
        else:
            reentered = False
    if reentered:
        try:
            yield
        finally:
            with _guard:
                _held[key] = (me, _held[key][1] - 1)
        return
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + wait_s
        delay = 0.05
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if delay == 0.05:  # the first refusal: say what this operation waits for
                    holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "another process"
                    phase(f"waiting for {env} ({holder})")
                if time.monotonic() >= deadline:
                    holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "another process"
                    raise OdooOpsError(
                        "ENV_BUSY", f"environment {env} is busy ({holder}); {operation} did not start",
                        f"wait for it to finish (odooops status {env}) and run the command again",
                        {"env": env, "holder": holder}) from None
                time.sleep(delay)  # waiting on another process's lock: there is no event to wait on
                delay = min(delay * 2, 1.0)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{operation} by pid {os.getpid()}".encode(), 0)
        with _guard:
            _held[key] = (me, 1)
        try:
            yield
        finally:
            with _guard:
                del _held[key]
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
