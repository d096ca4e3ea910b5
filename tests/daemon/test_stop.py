"""The daemon's stop contract with the applier seam: no new work, the running apply parks, what never ran
is recorded too, the daemon's lock is free, and the next daemon re-queues all of it first."""

from __future__ import annotations

import fcntl
import json
import os
import threading
from typing import Any

from reconciler.controller.planning import PlanOutcome, Project
from reconciler.controller.steps.context import EnvReport
from tests.daemon.conftest import DaemonFactory, push_branch, unique_branch
from tests.daemon.gitserve import wait_for
from tests.daemon.test_webhooks import RecordingApplier


class ParkingApplier:
    """Applies nothing: each apply waits until the daemon stops, then reports its environments parked
    (what the real Applier does at its next step boundary)."""

    def __init__(self) -> None:
        self.in_flight = threading.Event()
        self.stopping: Any = None  # the daemon's stopping(), set once the daemon exists
        self.branches: list[str] = []

    def factory(self, _project: Project) -> ParkingApplier:
        return self

    def apply(self, outcome: PlanOutcome) -> Any:
        self.branches += sorted({a.branch for a in outcome.plan.actions})
        self.in_flight.set()
        wait_for(self.stopping, 30, "the stop")
        envs = [EnvReport(a.env, str(a.action), a.branch, a.commit, result="parked") for a in outcome.plan.actions]
        return type("Report", (), {"environments": envs, "ok": False})()


def test_stop_parks_running_and_queued_work_and_the_next_daemon_runs_it_first(
        remote: dict[str, Any], make_daemon: DaemonFactory) -> None:
    parking = ParkingApplier()
    first = make_daemon(remote["url"], None, poll_interval=0.05, sweep_interval=3600, max_concurrent=1,
                        applier_factory=parking.factory)
    parking.stopping = first.stopping
    wait_for(first.is_ready, 30, "first poll")
    running, queued = unique_branch(), unique_branch()
    push_branch(remote["work"], running)
    wait_for(parking.in_flight.is_set, 30, "an apply in flight")
    commit = push_branch(remote["work"], queued)
    wait_for(lambda: queued in [i["key"] for i in first.queue.snapshot()["pending"]], 30, "the second branch queued")

    assert first.stop(30) is True  # the running apply parked within the grace period
    assert parking.branches == [running]  # nothing new started once the stop began
    parked = json.loads((first.dir / "daemon-parked.json").read_text())
    assert parked[running]["why"].startswith("stopped mid-apply") and parked[queued]["why"] == "stopped before it ran"
    fd = os.open(first.dir / "daemon.lock", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # free: raises BlockingIOError otherwise
    finally:
        os.close(fd)

    # The next daemon queues the parked branches before its first poll (which would find them too).
    recorder = RecordingApplier()
    second = make_daemon(remote["url"], None, poll_interval=3600, sweep_interval=3600,
                         applier_factory=recorder.factory, start=False)
    queued_first: list[tuple[str, str, str]] = []
    second.queue.add_hook(lambda event, item, _: queued_first.append((event, item.key, item.reason))
                          if event == "queued" and not second.is_ready() else None)
    second.start()
    wait_for(second.is_ready, 30, "first poll")
    assert sorted(key for _, key, reason in queued_first if reason.startswith("parked at the last stop")) == \
        sorted([running, queued])
    wait_for(lambda: recorder.commits_for(running) and recorder.commits_for(queued), 30, "parked work applied")
    assert commit in recorder.commits_for(queued)
    wait_for(lambda: second.status()["parked"] == [], 30, "parked records cleared")
    assert not json.loads((second.dir / "daemon-parked.json").read_text())
