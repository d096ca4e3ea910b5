"""Shared pytest fixtures: the real services come from tests/services.py (its __all__ lists them)."""

import os
import re
import shutil
import tempfile
from pathlib import Path

import pytest

from tests.services import *  # noqa: F403

_KEYS_DIR = pytest.StashKey[Path]()


def pytest_configure(config: pytest.Config) -> None:
    # The mail catcher is one container per (engine, address, port) serving one state directory.
    # Parallel workers each use their own state directories, so each gets its own catcher port
    # (and container name) instead of replacing the other's catcher mid-test. Workers inherit the
    # controller's environment, so a worker always sets its own (xdist names it in workerinput).
    worker_id = getattr(config, "workerinput", {}).get("workerid")
    if worker_id is not None:
        os.environ["ODOOOPS_MAIL_CATCHER_PORT"] = str(11025 + int(re.sub(r"\D", "", worker_id) or "0"))
    else:
        os.environ.setdefault("ODOOOPS_MAIL_CATCHER_PORT", "11124")  # one process: one catcher of its own
    # The audit and backup keys of a test process live in a directory of their own, not in the user's
    # ~/.config/odooops (tests that need a particular key set the variable themselves).
    # Workers inherit the controller's variables, so only the process that sets them creates the
    # directory, and removes it when the run ends.
    if "ODOOOPS_AUDIT_KEY_FILE" not in os.environ or "ODOOOPS_BACKUP_KEY_FILE" not in os.environ:
        keys = Path(tempfile.mkdtemp(prefix="odooops-test-keys-"))
        config.stash[_KEYS_DIR] = keys
        os.environ.setdefault("ODOOOPS_AUDIT_KEY_FILE", str(keys / "audit.key"))
        os.environ.setdefault("ODOOOPS_BACKUP_KEY_FILE", str(keys / "backup.key"))


def pytest_unconfigure(config: pytest.Config) -> None:
    keys = config.stash.get(_KEYS_DIR, None)
    if keys is not None:
        shutil.rmtree(keys, ignore_errors=True)
