"""Fair sharing of the work queue's slots across projects (docs/adr/0037, "Fair sharing"): a fake clock and
a run function that blocks each run until the test releases it, so the test decides when a slot frees.

The queue without projects is tested in tests/daemon/test_workqueue.py.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from reconciler.controller.workqueue import Backoff, Item, Result, WorkQueue
from reconciler.errors import OdooOpsError
from tests.daemon.test_workqueue import FakeClock

WAIT_S = 10.0  # a bound for a condition that holds within milliseconds; reached only when a test fails


class Gated:
    """A run function: each run records its start and blocks until `release(key)` (or `open()`)."""

    def __init__(self, results: dict[str, list[Result]] | None = None) -> None:
        self.cond = threading.Condition()
        self.started: list[tuple[str, str | None]] = []  # (key, project) in start order
        self.gates: dict[str, threading.Event] = {}  # one per running key
        self.results = results or {}
        self.opened = False

    def __call__(self, item: Item) -> Result:
        gate = threading.Event()
        with self.cond:
            self.started.append((item.key, item.project))
            self.gates[item.key] = gate
            if self.opened:
                gate.set()
            self.cond.notify_all()
        assert gate.wait(30), f"{item.key} never released"
        queued = self.results.get(item.key) or []
        return queued.pop(0) if queued else Result("ok")

    def wait_started(self, n: int) -> list[tuple[str, str | None]]:
        """Block until n runs have started; the starts so far."""
        with self.cond:
            assert self.cond.wait_for(lambda: len(self.started) >= n, WAIT_S), \
                f"{n} starts expected, {len(self.started)} seen: {self.started}"
            return list(self.started)

    def release(self, key: str) -> None:
        """Let the running `key` finish: its slot frees."""
        with self.cond:
            gate = self.gates.pop(key)
        gate.set()

    def open(self) -> None:
        """Let every run finish, now and later."""
        with self.cond:
            self.opened = True
            gates, self.gates = list(self.gates.values()), {}
        for gate in gates:
            gate.set()


class Finishes:
    """A hook that counts finished runs, to wait for a slot to be handed back."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.keys: list[str] = []

    def __call__(self, event: str, item: Item, _details: dict[str, Any]) -> None:
        if event in ("finished", "retry"):
            with self.cond:
                self.keys.append(f"{event}:{item.key}")
                self.cond.notify_all()

    def wait(self, entry: str) -> None:
        with self.cond:
            assert self.cond.wait_for(lambda: entry in self.keys, WAIT_S), f"no {entry} in {self.keys}"


@pytest.fixture
def made() -> Iterator[list[tuple[WorkQueue, Gated]]]:
    queues: list[tuple[WorkQueue, Gated]] = []
    yield queues
    for q, run in queues:
        q.halt()
        run.open()
        assert q.stop(5)


def make(made: list[tuple[WorkQueue, Gated]], n: int, run: Gated | None = None,
         **kw: Any) -> tuple[WorkQueue, Gated]:
    run = run or Gated()
    q = WorkQueue(run, n, **kw)
    made.append((q, run))
    return q, run


def projects(q: WorkQueue) -> dict[str | None, dict[str, Any]]:
    return {p["project"]: p for p in q.snapshot()["projects"]}


def flood(q: WorkQueue, project: str, n: int) -> None:
    for i in range(n):
        assert q.submit(f"{project}--b{i}", "push", i, project=project) == "queued"


@pytest.mark.parametrize("cap", [None, 4], ids=["default-cap", "round-robin-only"])
def test_a_flood_of_one_project_delays_another_projects_push_by_at_most_the_next_freed_slot(
        made: list[tuple[WorkQueue, Gated]], cap: int | None) -> None:
    q, run = make(made, 4, per_project_cap=cap)
    q.start()
    flood(q, "a", 100)
    assert {p for _, p in run.wait_started(4)} == {"a"}  # alone, a takes every slot
    assert q.submit("b--main", "push", project="b") == "queued"
    assert q.depth() == 97  # 96 of a's and b's one wait; nothing started for b without a free slot
    run.release("a--b0")
    assert run.wait_started(5)[4] == ("b--main", "b")  # the very next freed slot, ahead of 96 older items
    for key in ("b--main", "a--b1", "a--b2"):
        run.release(key)
    # b has nothing left: a's flood goes on, up to its cap (2 of 4 once b has shown up)
    started = run.wait_started(6 if cap is None else 8)
    assert {p for _, p in started[5:]} == {"a"}


def test_the_default_cap_keeps_slots_free_for_the_other_project(made: list[tuple[WorkQueue, Gated]]) -> None:
    q, run = make(made, 4)
    finished = Finishes()
    q.add_hook(finished)
    q.start()
    flood(q, "a", 100)
    run.wait_started(4)
    assert projects(q)["a"]["cap"] == 4
    q.submit("b--main", "push", project="b")
    assert projects(q)["a"]["cap"] == 2 and projects(q)["b"]["cap"] == 2  # ceil(4 / 2) with two projects
    run.release("a--b0")
    run.wait_started(5)
    run.release("a--b1")  # a still runs 2, its cap: the freed slot stays free for b
    finished.wait("finished:a--b1")
    q.submit("b--pr-1", "push", project="b")  # starts at once, nothing has to finish first
    assert run.wait_started(6)[5] == ("b--pr-1", "b")
    snap = projects(q)
    assert (snap["a"]["running"], snap["b"]["running"]) == (2, 2)
    assert q.snapshot()["projects"] == [{"project": "a", "queued": 96, "running": 2, "cap": 2},
                                        {"project": "b", "queued": 0, "running": 2, "cap": 2}]
    assert sorted(q.running()) == q.running() and len(q.running()) == 4


def test_a_project_at_its_cap_does_not_block_another(made: list[tuple[WorkQueue, Gated]]) -> None:
    q, run = make(made, 3)
    q.set_project_cap("a", 1)  # a's own quota
    flood(q, "a", 5)  # a's items are the oldest
    flood(q, "b", 2)
    q.start()
    assert set(run.wait_started(3)) == {("a--b0", "a"), ("b--b0", "b"), ("b--b1", "b")}
    snap = projects(q)
    assert (snap["a"]["running"], snap["a"]["cap"], snap["a"]["queued"]) == (1, 1, 4)
    assert (snap["b"]["running"], snap["b"]["cap"], snap["b"]["queued"]) == (2, 2, 0)


def test_a_single_project_gets_all_slots(made: list[tuple[WorkQueue, Gated]]) -> None:
    q, run = make(made, 4)
    q.start()
    flood(q, "a", 10)
    assert run.wait_started(4) == [(f"a--b{i}", "a") for i in range(4)]
    assert q.snapshot()["projects"] == [{"project": "a", "queued": 6, "running": 4, "cap": 4}]


def test_an_idle_slot_goes_to_a_project_under_its_cap_while_the_others_are_idle(
        made: list[tuple[WorkQueue, Gated]]) -> None:
    q, run = make(made, 4, per_project_cap=3)
    finished = Finishes()
    q.add_hook(finished)
    q.start()
    q.submit("b--main", "push", project="b")
    run.wait_started(1)
    run.release("b--main")
    finished.wait("finished:b--main")  # b is known, and idle
    flood(q, "a", 10)
    assert [p for _, p in run.wait_started(4)[1:]] == ["a"] * 3  # a's whole cap, not "its half"
    assert projects(q)["a"]["running"] == 3
    q.submit("b--main", "push", project="b")  # the fourth slot was free all along
    assert run.wait_started(5)[4] == ("b--main", "b")


def test_a_project_quota_only_lowers_the_cap(made: list[tuple[WorkQueue, Gated]]) -> None:
    q, _run = make(made, 5)
    q.submit("a--main", "push", project="a")
    q.submit("b--main", "push", project="b")
    q.set_project_cap("a", 10)
    q.set_project_cap("b", 1)
    assert {p: s["cap"] for p, s in projects(q).items()} == {"a": 3, "b": 1}
    q.set_project_cap("b", None)
    assert projects(q)["b"]["cap"] == 3
    with pytest.raises(OdooOpsError) as err:
        q.set_project_cap("a", 0)
    assert err.value.code == "USAGE" and "'a'" in err.value.message
    with pytest.raises(OdooOpsError):
        WorkQueue(Gated(), 4, per_project_cap=0)


def test_round_robin_order_across_projects_and_fifo_within_one(made: list[tuple[WorkQueue, Gated]]) -> None:
    q, run = make(made, 1)
    flood(q, "a", 3)
    flood(q, "b", 2)
    flood(q, "c", 1)
    q.start()
    for n in range(6):
        key = run.wait_started(n + 1)[n][0]
        run.release(key)
    assert [k for k, _ in run.started] == ["a--b0", "b--b0", "c--b0", "a--b1", "b--b1", "a--b2"]


def test_without_projects_the_order_is_todays_fifo(made: list[tuple[WorkQueue, Gated]]) -> None:
    q, run = make(made, 1)
    for key in ("a--b0", "a--b1", "a--b2", "b--b0"):
        q.submit(key, "push")
    q.start()
    for n in range(4):
        key = run.wait_started(n + 1)[n][0]
        if n == 3:
            assert q.snapshot()["projects"] == [{"project": None, "queued": 0, "running": 1, "cap": 1}]
        run.release(key)
    assert run.started == [("a--b0", None), ("a--b1", None), ("a--b2", None), ("b--b0", None)]


def test_a_legacy_project_beside_a_named_one_is_one_project_of_two(made: list[tuple[WorkQueue, Gated]]) -> None:
    q, run = make(made, 2)
    q.start()
    for key in ("main", "develop", "pr-1"):
        q.submit(key, "push")  # the project that took the installation over keeps its bare names
    run.wait_started(2)
    q.submit("acme--main", "push", project="acme")
    assert {p: s["cap"] for p, s in projects(q).items()} == {None: 1, "acme": 1}
    run.release("main")
    assert run.wait_started(3)[2] == ("acme--main", "acme")


def test_a_backoff_that_is_not_due_is_not_ready(made: list[tuple[WorkQueue, Gated]]) -> None:
    clock = FakeClock()
    err = {"error": "DOCKER_UNREACHABLE", "message": "engine down"}
    run = Gated({"b--main": [Result.retry(err)]})
    q, _ = make(made, 1, run, clock=clock, backoff=Backoff(base=10, cap=60, rand=lambda: 1.0))
    finished = Finishes()
    q.add_hook(finished)
    q.start()
    q.submit("b--main", "push", project="b")
    run.wait_started(1)
    flood(q, "a", 3)
    run.release("b--main")
    finished.wait("retry:b--main")
    assert [r for r in q.snapshot()["pending"] if r["key"] == "b--main"] == [
        {"key": "b--main", "reason": "push", "attempt": 1, "waits_s": 10.0, "coalesced": 0, "project": "b"}]
    assert run.wait_started(2)[1] == ("a--b0", "a")  # the cursor is at b, but b's retry is not due
    run.release("a--b0")
    assert run.wait_started(3)[2] == ("a--b1", "a")
    clock.now += 10
    q.wake()
    run.release("a--b1")
    assert run.wait_started(4)[3] == ("b--main", "b")  # due now: b's turn comes first
    assert projects(q)["a"]["queued"] == 1


def test_follow_ups_and_retries_keep_their_project(made: list[tuple[WorkQueue, Gated]]) -> None:
    q, run = make(made, 2)
    q.start()
    q.submit("b--main", "push", 1, project="b")
    run.wait_started(1)
    assert q.submit("b--main", "push", 2, project="b") == "rerun"
    assert q.snapshot()["follow_ups"][0]["project"] == "b"
    assert projects(q)["b"]["queued"] == 1 and q.depth() == 1
    run.release("b--main")
    assert run.wait_started(2)[1] == ("b--main", "b")
