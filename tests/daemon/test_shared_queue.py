"""One serve of several projects: the projects' daemons share one pool of workers (controller/daemon/
shared_queue.py). Each daemon sees only its own branches, by their own names; the same branch name in two
projects is two pieces of work; a flooding project does not hold the next free slot from the other."""

from __future__ import annotations

import threading
from typing import Any

from reconciler.controller.daemon.shared_queue import SharedQueue
from reconciler.controller.workqueue import Backoff, Item, Result, merge_work
from tests.controller.test_workqueue import WAIT_S, Gated


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []
        self.lock = threading.Lock()

    def __call__(self, event: str, item: Item, _details: dict[str, Any]) -> None:
        with self.lock:
            self.events.append((event, item.key))


def test_each_project_sees_its_own_branches_by_their_names() -> None:
    gates = {"acme": Gated(), "globex": Gated()}  # one each: both run a branch named main
    runs: dict[str, list[str]] = {"acme": [], "globex": []}

    def runner(project: str) -> Any:
        def run(item: Item) -> Result:
            runs[project].append(item.key)
            return gates[project](item)
        return run

    shared = SharedQueue(2, backoff=Backoff(), merge=merge_work)
    acme, globex = shared.view("acme", runner("acme")), shared.view("globex", runner("globex"))
    hooks = Recorder()
    acme.add_hook(hooks)
    assert acme.submit("main", "push") == "queued" and globex.submit("main", "push") == "queued"
    acme.start()
    globex.start()  # starting twice starts one pool
    assert gates["acme"].wait_started(1) == [("main", "acme")]
    assert gates["globex"].wait_started(1) == [("main", "globex")]
    assert acme.running() == ["main"] and globex.running() == ["main"]
    assert acme.submit("main", "push again") == "rerun" and acme.depth() == 1 and globex.depth() == 0
    snap = acme.snapshot()
    assert [r["key"] for r in snap["running"]] == ["main"] and [r["key"] for r in snap["follow_ups"]] == ["main"]
    assert {p["project"] for p in snap["projects"]} == {"acme", "globex"}
    for gated in gates.values():
        gated.open()
    gates["acme"].wait_started(2)  # acme's follow-up run of main: the last of the three
    assert shared.stop(WAIT_S)  # the workers end once the three runs (released) have finished
    assert runs == {"acme": ["main", "main"], "globex": ["main"]}
    assert ("started", "main") in hooks.events and all(k == "main" for _, k in hooks.events)
    assert len([e for e in hooks.events if e[0] == "started"]) == 2  # acme's two runs, not globex's
    assert acme.idle() and globex.idle() and acme.unfinished() == [] == globex.unfinished()


def test_a_flooding_project_leaves_the_next_slot_to_the_other() -> None:
    gated = Gated()
    shared = SharedQueue(2, backoff=Backoff(), merge=merge_work)
    acme, globex = shared.view("acme", gated), shared.view("globex", gated)
    for n in range(50):
        acme.submit(f"feature/{n}", "push")
    acme.start()
    first = gated.wait_started(2)
    assert [p for _, p in first] == ["acme", "acme"]  # alone, acme gets every slot
    globex.submit("main", "push")
    gated.release(first[0][0])  # the next freed slot goes to globex, not to acme's 48 waiting branches
    assert gated.wait_started(3)[2] == ("main", "globex")
    stopped = shared.stop(0.1)
    gated.open()
    assert shared.stop(WAIT_S) == stopped  # stopped once: every daemon gets the same outcome
    left = {i.key for i in acme.unfinished()}
    assert "feature/0" not in left and len(left) >= 47 and all(k.startswith("feature/") for k in left)
