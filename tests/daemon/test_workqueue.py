"""The work queue on its own: a fake clock and a recording run function (the queue's seam)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from reconciler.controller.workqueue import Backoff, Item, Result, WorkQueue, is_transient
from reconciler.errors import OdooOpsError
from tests.daemon.gitserve import wait_for


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Recorder:
    """A run function whose calls block until released, so tests control the interleaving."""

    def __init__(self, results: dict[str, list[Result]] | None = None, block: bool = False) -> None:
        self.calls: list[tuple[str, Any, int]] = []
        self.results = results or {}
        self.block = block
        self.gates: dict[str, threading.Event] = {}
        self.active = 0
        self.max_active = 0
        self.lock = threading.Lock()

    def gate(self, key: str) -> threading.Event:
        with self.lock:
            return self.gates.setdefault(key, threading.Event())

    def __call__(self, item: Item) -> Result:
        with self.lock:
            self.calls.append((item.key, item.payload, item.attempt))
            self.active += 1
            self.max_active = max(self.max_active, self.active)
        try:
            if self.block:
                assert self.gate(item.key).wait(30), f"{item.key} never released"
            queued = self.results.get(item.key) or []
            return queued.pop(0) if queued else Result("ok")
        finally:
            with self.lock:
                self.active -= 1


@pytest.fixture
def queues() -> Iterator[list[WorkQueue]]:
    made: list[WorkQueue] = []
    yield made
    for q in made:
        q.stop(5)


def make(queues: list[WorkQueue], run: Recorder, n: int = 10, **kw: Any) -> WorkQueue:
    q = WorkQueue(run, n, **kw)
    queues.append(q)
    return q


def test_concurrency_limit_and_per_key_serialisation(queues: list[WorkQueue]) -> None:
    run = Recorder(block=True)
    q = make(queues, run, n=2)
    q.start()
    for key in ("a", "b", "c", "d"):
        q.submit(key, "push")
    wait_for(lambda: len(run.calls) == 2, 10, "two runs")
    assert q.depth() == 2 and len(q.running()) == 2  # the rest wait, visibly
    # a key that runs is never started twice at once: a new event becomes one follow-up
    first = run.calls[0][0]
    assert q.submit(first, "push again") == "rerun"
    assert q.submit(first, "and again") == "rerun"
    for key in ("a", "b", "c", "d"):
        run.gate(key).set()
    wait_for(q.idle, 10, "queue drained")
    assert run.max_active == 2
    assert [k for k, _, _ in run.calls].count(first) == 2
    assert sorted({k for k, _, _ in run.calls}) == ["a", "b", "c", "d"]


def test_burst_coalesces_to_newest_payload(queues: list[WorkQueue]) -> None:
    run = Recorder(block=True)
    q = make(queues, run, n=1)
    q.start()
    q.submit("main", "push", 0)
    wait_for(lambda: run.calls, 10, "first run")
    outcomes = [q.submit("main", "push", n) for n in range(1, 100)]
    assert outcomes == ["rerun"] * 99 and q.depth() == 1
    run.gate("main").set()
    wait_for(q.idle, 10, "drained")
    assert [p for _, p, _ in run.calls] == [0, 99]  # two runs: the first and the newest


def test_queued_item_is_replaced_not_appended(queues: list[WorkQueue]) -> None:
    run = Recorder()
    q = make(queues, run, n=1)
    assert [q.submit("x", "push", n) for n in range(5)] == ["queued"] + ["coalesced"] * 4
    assert q.depth() == 1 and q.snapshot()["pending"][0]["coalesced"] == 4
    q.start()
    wait_for(q.idle, 10, "drained")
    assert run.calls == [("x", 4, 0)]


def test_transient_failures_back_off_with_jitter_without_sleeping(queues: list[WorkQueue]) -> None:
    clock = FakeClock()
    err = {"error": "DOCKER_UNREACHABLE", "message": "engine down"}
    run = Recorder({"env": [Result.retry(err), Result.retry(err), Result("ok")]})
    events: list[tuple[str, dict[str, Any]]] = []
    q = make(queues, run, n=1, clock=clock, backoff=Backoff(base=10, cap=60, max_attempts=5, rand=lambda: 1.0))
    q.add_hook(lambda ev, item, d: events.append((ev, d)))
    q.start()
    q.submit("env", "push", "p")
    wait_for(lambda: len(run.calls) == 1 and q.snapshot()["pending"], 10, "first attempt")
    pending = q.snapshot()["pending"][0]
    assert pending["attempt"] == 1 and pending["waits_s"] == 10.0  # 10/2 + 1.0 * 10/2
    clock.now += 9.9
    q.wake()
    assert len(run.calls) == 1  # not yet due
    clock.now += 0.2
    q.wake()
    wait_for(lambda: len(run.calls) == 2, 10, "second attempt")
    wait_for(lambda: q.snapshot()["pending"], 10, "second backoff")
    assert q.snapshot()["pending"][0]["waits_s"] == 20.0  # doubled
    clock.now += 20
    q.wake()
    wait_for(q.idle, 10, "done")
    assert [a for _, _, a in run.calls] == [0, 1, 2]
    assert [e for e, _ in events if e in ("retry", "gave_up")] == ["retry", "retry"]


def test_gives_up_after_max_attempts_and_permanent_failures_run_once(queues: list[WorkQueue]) -> None:
    clock = FakeClock()
    err = {"error": "POSTGRES_UNREACHABLE", "message": "down"}
    run = Recorder({"t": [Result.retry(err)] * 10, "p": [Result("failed", {"error": "TESTS_FAILED"})]})
    events: list[str] = []
    q = make(queues, run, n=2, clock=clock, backoff=Backoff(base=1, cap=4, max_attempts=3, rand=lambda: 0.0))
    q.add_hook(lambda ev, item, d: events.append(f"{ev}:{item.key}"))
    q.start()
    q.submit("t", "push")
    q.submit("p", "push")
    for attempt in range(1, 3):
        wait_for(lambda a=attempt: len([c for c in run.calls if c[0] == "t"]) == a, 10, f"attempt {attempt}")
        wait_for(lambda: q.snapshot()["pending"], 10, "backoff")
        clock.now += 10
        q.wake()
    wait_for(q.idle, 10, "done")
    assert [c[2] for c in run.calls if c[0] == "t"] == [0, 1, 2]
    assert [c for c in run.calls if c[0] == "p"] == [("p", None, 0)]
    assert "gave_up:t" in events and not any(e.endswith(":p") and e.startswith("retry") for e in events)


def test_exceptions_fail_one_item_not_the_worker(queues: list[WorkQueue]) -> None:
    calls: list[str] = []

    def run(item: Item) -> Result:
        calls.append(item.key)
        if item.key == "bug":
            raise RuntimeError("boom")
        if item.key == "infra":
            raise OdooOpsError("GIT_REMOTE_UNREACHABLE", "down", "retry")
        return Result("ok")

    results: dict[str, Result] = {}
    q = WorkQueue(run, 1, backoff=Backoff(base=0.001, cap=0.001, max_attempts=2))
    queues.append(q)
    q.add_hook(lambda ev, item, d: results.__setitem__(item.key, d["result"]) if ev == "finished" else None)
    q.start()
    for key in ("bug", "infra", "fine"):
        q.submit(key, "push")
    wait_for(q.idle, 10, "drained")
    assert results["bug"].status == "failed" and results["fine"].status == "ok"
    assert calls.count("infra") == 2  # transient: retried once, then given up


def test_transient_classification() -> None:
    assert is_transient({"error": "DOCKER_UNREACHABLE"})
    assert is_transient(OdooOpsError("TERRAFORM_FAILED", "Error acquiring the state lock", "wait"))
    assert not is_transient({"error": "TERRAFORM_FAILED", "message": "invalid resource"})
    assert not is_transient({"error": "TESTS_FAILED"}) and not is_transient(None)
