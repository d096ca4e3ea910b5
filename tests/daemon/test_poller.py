"""The poller against a remote that goes away and comes back, with the applier seam recording."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.daemon.conftest import DaemonFactory, push_branch, unique_branch
from tests.daemon.faults import TcpRelay
from tests.daemon.gitserve import git, wait_for
from tests.daemon.test_webhooks import RecordingApplier


def test_unreachable_remote_is_reported_and_polling_resumes(remote: dict[str, Any], make_daemon: DaemonFactory,
                                                            served: tuple[Path, str]) -> None:
    # A relay in front of the remote that this test can cut (it keeps its port meanwhile).
    relay = TcpRelay(int(served[1].rsplit(":", 1)[1]))
    url = f"git://127.0.0.1:{relay.port}/acme.git"
    recorder = RecordingApplier()
    try:
        daemon = make_daemon(url, None, poll_interval=0.05, sweep_interval=3600, applier_factory=recorder.factory)
        wait_for(daemon.is_ready, 30, "first poll")
        relay.cut.set()
        # the remote is gone: polls fail, the daemon stays alive and says why
        wait_for(lambda: (daemon.status().get("last_error") or {}).get("error") == "GIT_REMOTE_UNREACHABLE",
                 30, "the error in /status")
        assert daemon.is_alive() and daemon.is_ready()
        # (the first error can come from the sweep that follows the first poll; polls count theirs)
        wait_for(lambda: daemon.metrics.polls.labels(trigger="timer", result="error")._value.get() >= 1, 30,
                 "failed polls counted")
        branch = unique_branch()
        commit = push_branch(remote["work"], branch)  # lands while the daemon cannot see the remote
        relay.cut.clear()
        wait_for(lambda: commit in recorder.commits_for(branch), 30, "the missed push applied")
        assert git(remote["bare"], "rev-parse", f"refs/heads/{branch}") == commit
    finally:
        relay.close()


def test_one_daemon_per_project_and_state_dir(remote: dict[str, Any], make_daemon: DaemonFactory) -> None:
    import pytest

    from reconciler.errors import OdooOpsError

    recorder = RecordingApplier()
    first = make_daemon(remote["url"], None, poll_interval=3600, applier_factory=recorder.factory)
    second = make_daemon(remote["url"], None, poll_interval=3600, start=False)
    with pytest.raises(OdooOpsError) as exc:
        second.start()
    assert exc.value.code == "DAEMON_ALREADY_RUNNING" and "fuser" in exc.value.remediation
    first.stop(10)
    second.start()  # the lock goes with the process that held it
    wait_for(second.is_ready, 30, "second daemon ready")
