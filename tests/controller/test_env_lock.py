"""The per-environment lock serialises operations across processes and dies with its holder."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from reconciler.errors import OdooOpsError
from reconciler.platform.env_lock import env_lock, lock_path

HOLD = """
import sys, time
from pathlib import Path
from reconciler.platform.env_lock import env_lock
with env_lock(Path(sys.argv[1]), "staging", "restore"):
    print("held", flush=True)
    sys.stdin.read()
"""


def test_second_holder_is_refused_with_the_holder_named(tmp_path: Path) -> None:
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(OdooOpsError) as err, env_lock(tmp_path, "staging", "apply", wait_s=0.3):
            pass
        assert err.value.code == "ENV_BUSY"
        assert "restore by pid" in err.value.message
        # Another environment is independent.
        with env_lock(tmp_path, "production", "apply", wait_s=0.3):
            pass
    finally:
        holder.kill()
        holder.wait()
    # The kernel released the lock of the killed holder: no stale lock after a crash.
    with env_lock(tmp_path, "staging", "apply", wait_s=5):
        assert lock_path(tmp_path, "staging").read_text().startswith("apply by pid")


def test_holder_thread_may_take_it_again_other_threads_wait(tmp_path: Path) -> None:
    import threading

    from reconciler.platform.env_lock import is_busy

    assert not is_busy(tmp_path, "staging")
    with env_lock(tmp_path, "staging", "rollback"):
        # A rollback runs an apply of the same environment in its own thread: no self-deadlock.
        with env_lock(tmp_path, "staging", "apply", wait_s=0.3):
            assert not is_busy(tmp_path, "staging")  # not busy for the holder itself
        outcome: list[str] = []

        def other() -> None:
            outcome.append("busy" if is_busy(tmp_path, "staging") else "free")
            try:
                with env_lock(tmp_path, "staging", "apply", wait_s=0.3):
                    outcome.append("got it")
            except OdooOpsError as exc:
                outcome.append(exc.code)

        t = threading.Thread(target=other)
        t.start()
        t.join(30)
        assert outcome == ["busy", "ENV_BUSY"]
    # Released after the outer block only; another process sees it free.
    probe = subprocess.run([sys.executable, "-c", "import sys; from pathlib import Path; "
                            "from reconciler.platform.env_lock import is_busy; "
                            "print(is_busy(Path(sys.argv[1]), 'staging'))", str(tmp_path)],
                           capture_output=True, text=True, check=True)
    assert probe.stdout.strip() == "False"


def test_busy_is_seen_from_another_process(tmp_path: Path) -> None:
    from reconciler.platform.env_lock import is_busy

    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        assert is_busy(tmp_path, "staging") and not is_busy(tmp_path, "production")
    finally:
        holder.kill()
        holder.wait()
    assert not is_busy(tmp_path, "staging")
