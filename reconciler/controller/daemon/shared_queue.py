"""One pool of workers for the daemons of several projects (one `odooops serve`, several projects).

Each project's daemon keeps working with a queue of its own branches (`ProjectQueue`, the part of the
WorkQueue interface a daemon uses); underneath, one WorkQueue holds every project's work, its keys made
unique by the project's name, and shares the slots fairly (docs/adr/0037, "Fair sharing"): a flooding
project keeps at most half of them once another project has work, and the other's next item starts in
the next freed slot.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from reconciler.controller.workqueue import Backoff, Hook, Item, Merge, Result, WorkQueue

SEP = "\x1f"  # between project and branch: a control character no branch name (refnames.py) can hold


class SharedQueue:
    def __init__(self, max_concurrent: int, *, backoff: Backoff, merge: Merge,
                 per_project_cap: int | None = None) -> None:
        self._runs: dict[str, Callable[[Item], Result]] = {}
        self.queue = WorkQueue(self._run, max_concurrent, backoff=backoff, merge=merge,
                               per_project_cap=per_project_cap)
        self._lock = threading.Lock()
        self._started = False
        self._stopped: bool | None = None

    def view(self, project: str, run: Callable[[Item], Result]) -> ProjectQueue:
        """The queue of one project's daemon; `run` reconciles one of its branches."""
        self._runs[project] = run
        return ProjectQueue(self, project)

    def _run(self, item: Item) -> Result:
        assert item.project is not None
        return self._runs[item.project](replace(item, key=item.key.split(SEP, 1)[1]))

    def start(self) -> None:
        with self._lock:
            if not self._started:
                self._started = True
                self.queue.start()

    def stop(self, timeout: float) -> bool:
        """Stops the workers once, whichever project's daemon asks first; every caller gets the outcome."""
        with self._lock:
            if self._stopped is None:
                self._stopped = self.queue.stop(timeout)
            return self._stopped


class ProjectQueue:
    """One project's branches in the shared queue, with the WorkQueue methods a Daemon calls."""

    def __init__(self, shared: SharedQueue, project: str) -> None:
        self.shared = shared
        self.project = project
        self._prefix = project + SEP

    def _mine(self, key: str) -> bool:
        return key.startswith(self._prefix)

    def _strip(self, key: str) -> str:
        return key[len(self._prefix):]

    def submit(self, key: str, reason: str, payload: Any = None) -> str:
        return self.shared.queue.submit(self._prefix + key, reason, payload, project=self.project)

    def add_hook(self, hook: Hook) -> None:
        def mine(event: str, item: Item, details: dict[str, Any]) -> None:
            if item.project == self.project:
                hook(event, replace(item, key=self._strip(item.key)), details)

        self.shared.queue.add_hook(mine)

    def running(self) -> list[str]:
        return [self._strip(k) for k in self.shared.queue.running() if self._mine(k)]

    def depth(self) -> int:
        snap = self.shared.queue.snapshot()
        return len([r for r in snap["pending"] + snap["follow_ups"] if self._mine(r["key"])])

    def idle(self) -> bool:
        snap = self.shared.queue.snapshot()
        return not [r for r in snap["running"] + snap["pending"] + snap["follow_ups"] if self._mine(r["key"])]

    def snapshot(self) -> dict[str, Any]:
        """This project's rows, plus the whole pool's size and every project's counts (what it shares)."""
        snap = self.shared.queue.snapshot()

        def own(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
            return [{**r, "key": self._strip(r["key"])} for r in rows if self._mine(r["key"])]

        return {**snap, "running": own(snap["running"]), "pending": own(snap["pending"]),
                "follow_ups": own(snap["follow_ups"])}

    def start(self) -> None:
        self.shared.start()

    def halt(self) -> None:
        self.shared.queue.halt()  # a shutdown stops every project's new work at once

    def stop(self, timeout: float = 30.0) -> bool:
        return self.shared.stop(timeout)

    def unfinished(self) -> list[Item]:
        return [replace(i, key=self._strip(i.key)) for i in self.shared.queue.unfinished() if self._mine(i.key)]


__all__ = ["SEP", "ProjectQueue", "SharedQueue"]
