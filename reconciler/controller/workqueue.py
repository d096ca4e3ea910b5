"""A work queue keyed by branch: one run per key at a time, a global limit shared fairly across projects,
coalescing, backoff."""

from __future__ import annotations

import json
import logging
import math
import random
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reconciler.core.error_codes import retryable
from reconciler.errors import OdooOpsError
from reconciler.platform.atomic import write_atomic

if TYPE_CHECKING:
    from reconciler.controller.planning import PlanOutcome

log = logging.getLogger(__name__)

def is_transient(error: OdooOpsError | dict[str, Any] | None) -> bool:
    """True for error codes worth a retry with backoff: the error table's kinds `transient` and `busy`
    (reconciler/core/error_codes.py), and a Terraform state lock, which only the message tells apart."""
    if error is None:
        return False
    if isinstance(error, OdooOpsError):
        code, message = error.code, error.message
    else:
        code, message = str(error.get("error", "")), str(error.get("message", ""))
    if retryable(code):
        return True
    return code == "TERRAFORM_FAILED" and "lock" in message.lower()


@dataclass
class Item:
    """One unit of work: the newest payload for a key, with its retry bookkeeping."""

    key: str
    reason: str
    payload: Any = None
    attempt: int = 0
    not_before: float = 0.0
    submitted_at: float = 0.0
    coalesced: int = 0  # how many submissions this item absorbed
    project: str | None = None  # None: the single (or legacy) project


@dataclass(frozen=True)
class Result:
    """What running an item came to: ok, noop, failed (permanent), retry (transient) or parked (stopped
    by a shutdown; the caller keeps it for the next start)."""

    status: str
    error: dict[str, Any] | None = None
    retry_payload: Any = None

    @classmethod
    def retry(cls, error: dict[str, Any] | None, payload: Any = None) -> Result:
        return cls("retry", error, payload)


Hook = Callable[[str, Item, dict[str, Any]], None]  # event, item, details
Merge = Callable[[Any, Any], Any]  # (queued payload, new payload) -> payload to keep


@dataclass
class Backoff:
    """Exponential backoff with "equal jitter": half the delay fixed, half random."""

    base: float = 2.0
    cap: float = 300.0
    max_attempts: int = 5
    rand: Callable[[], float] = random.random

    def delay(self, attempt: int) -> float:
        full = min(self.cap, self.base * 2 ** attempt)
        return full / 2 + self.rand() * full / 2


@dataclass
class _State:
    pending: OrderedDict[str, Item] = field(default_factory=OrderedDict)  # oldest first
    running: dict[str, Item] = field(default_factory=dict)
    rerun: dict[str, Item] = field(default_factory=dict)  # submitted while its key was running
    projects: list[str | None] = field(default_factory=list)  # in order of their first submission
    last: int = -1  # index in `projects` of the project picked last; the next dispatch looks after it
    caps: dict[str | None, int] = field(default_factory=dict)  # set_project_cap: a project's own quota


def _keep_newest(_old: Any, new: Any) -> Any:
    return new


class WorkQueue:
    """Per-key serialisation, at most `max_concurrent` runs at once, newest payload wins, slots shared
    fairly across projects.

    A key that is queued absorbs new submissions (its payload is replaced, not appended); a key
    that is running gets exactly one follow-up run with the newest payload. `clock` is monotonic
    seconds and injectable, so backoff can be tested without sleeping (call `wake()` after
    moving a fake clock).

    Projects (docs/adr/0037, "Fair sharing"): each item belongs to the project it was submitted for
    (None: the single or legacy project; keys are unique across projects). When a slot frees, a
    round-robin cursor over the projects picks the oldest ready item of the first project that has
    one and runs fewer than its cap, so a project with ready work waits for at most (projects - 1)
    dispatches however much another one queued. A project's cap is `per_project_cap`, by default
    all slots while one project has submitted work and ceil(max_concurrent / 2) from the second
    on, lowered by `set_project_cap` (a project's own quota). Nothing else holds a slot back: a
    project under its cap gets an idle slot even if every other project is idle. With one project
    the order is today's: the oldest ready item first.
    """

    def __init__(self, run: Callable[[Item], Result], max_concurrent: int = 10, *,
                 clock: Callable[[], float] = time.monotonic, backoff: Backoff | None = None,
                 merge: Merge = _keep_newest, name: str = "odooops-worker",
                 per_project_cap: int | None = None) -> None:
        if max_concurrent < 1:
            raise OdooOpsError("USAGE", f"max_concurrent must be at least 1, not {max_concurrent}",
                               "pass --max-concurrent 1 or more")
        if per_project_cap is not None and per_project_cap < 1:
            raise OdooOpsError("USAGE", f"per_project_cap must be at least 1, not {per_project_cap}",
                               "set the per-project cap to 1 or more, or leave it unset for the default "
                               "(every slot for one project, half of them once a second one has work)")
        self._run = run
        self.max_concurrent = max_concurrent
        self.per_project_cap = per_project_cap
        self.clock = clock
        self.backoff = backoff or Backoff()
        self._merge = merge
        self._name = name
        self._state = _State()
        self._cond = threading.Condition()
        self._threads: list[threading.Thread] = []
        self._stopping = False
        self._hooks: list[Hook] = []

    # ------------------------------------------------------------------ observers

    def add_hook(self, hook: Hook) -> None:
        """hook(event, item, details) for queued|coalesced|rerun|started|finished|retry|gave_up."""
        self._hooks.append(hook)

    def _emit(self, event: str, item: Item, **details: Any) -> None:
        for hook in self._hooks:
            try:
                hook(event, item, details)
            except Exception:  # an observer must never break the queue
                log.exception("work queue hook failed on %s %s", event, item.key)

    def set_project_cap(self, project: str | None, cap: int | None) -> None:
        """Lower `project`'s cap to `cap` (its policy's quota; it never raises the cap above the queue's
        own); None removes it. Takes effect at the next dispatch; running items are not stopped."""
        if cap is not None and cap < 1:
            raise OdooOpsError("USAGE", f"the concurrency cap of project {project!r} must be at least 1, "
                               f"not {cap}", "set the project's quota to 1 or more, or remove it")
        with self._cond:
            if cap is None:
                self._state.caps.pop(project, None)
            else:
                self._state.caps[project] = cap
            self._cond.notify_all()

    def _cap(self, project: str | None) -> int:
        """The most runs `project` may have at once (with the lock held)."""
        base = self.per_project_cap
        if base is None:
            base = self.max_concurrent if len(self._state.projects) < 2 else math.ceil(self.max_concurrent / 2)
        own = self._state.caps.get(project)
        return min(self.max_concurrent, base, own if own is not None else base)

    def depth(self) -> int:
        """Items waiting (including follow-ups of running keys), not counting running ones."""
        with self._cond:
            return len(self._state.pending) + len(self._state.rerun)

    def running(self) -> list[str]:
        with self._cond:
            return sorted(self._state.running)

    def snapshot(self) -> dict[str, Any]:
        """Queue contents for `GET /status`; `projects` has each project's queued items (pending and
        follow-ups, as `depth()` counts them), running items and cap, in round-robin order."""
        now = self.clock()
        with self._cond:
            st = self._state

            def row(i: Item) -> dict[str, Any]:
                return {"key": i.key, "reason": i.reason, "attempt": i.attempt,
                        "waits_s": round(max(0.0, i.not_before - now), 3), "coalesced": i.coalesced,
                        "project": i.project}

            def count(items: dict[str, Item], project: str | None) -> int:
                return sum(1 for i in items.values() if i.project == project)

            projects = [{"project": p, "queued": count(st.pending, p) + count(st.rerun, p),
                         "running": count(st.running, p), "cap": self._cap(p)} for p in st.projects]
            return {"max_concurrent": self.max_concurrent,
                    "running": [row(i) for i in st.running.values()],
                    "pending": [row(i) for i in st.pending.values()],
                    "follow_ups": [row(i) for i in st.rerun.values()],
                    "projects": projects}

    def idle(self) -> bool:
        with self._cond:
            return not (self._state.pending or self._state.running or self._state.rerun)

    # ------------------------------------------------------------------ producers

    def submit(self, key: str, reason: str, payload: Any = None, *, project: str | None = None) -> str:
        """Queue work for key of `project` (None: the single or legacy project); returns "queued",
        "coalesced" or "rerun" (key is running). A key keeps the project it was first queued for while
        it is queued or running (keys are unique across projects)."""
        now = self.clock()
        with self._cond:
            st = self._state
            if project not in st.projects:
                st.projects.append(project)
            if key in st.pending:
                item = st.pending[key]
                # Newest wins, but a backoff in progress stays: the infrastructure that failed
                # is the same for the newer commit.
                item.payload = self._merge(item.payload, payload)
                item.reason = reason
                item.coalesced += 1
                outcome = "coalesced"
            elif key in st.running:
                prev = st.rerun.get(key)
                if prev is None:
                    item = Item(key, reason, payload, submitted_at=now, not_before=now,
                                project=st.running[key].project)
                    st.rerun[key] = item
                else:
                    item = prev
                    item.payload = self._merge(prev.payload, payload)
                    item.reason = reason
                    item.coalesced += 1
                outcome = "rerun"
            else:
                item = Item(key, reason, payload, submitted_at=now, not_before=now, project=project)
                st.pending[key] = item
                outcome = "queued"
            self._cond.notify()
        self._emit(outcome, item)
        return outcome

    def wake(self) -> None:
        """Re-check deadlines now (after a fake clock moved, or on shutdown)."""
        with self._cond:
            self._cond.notify_all()

    # ------------------------------------------------------------------ workers

    def start(self) -> None:
        with self._cond:
            self._stopping = False
        for n in range(self.max_concurrent - len(self._threads)):
            t = threading.Thread(target=self._worker, name=f"{self._name}-{n}", daemon=True)
            t.start()
            self._threads.append(t)

    def halt(self) -> None:
        """Stop handing out work (running items go on); `stop` then waits for them."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()

    def stop(self, timeout: float = 30.0) -> bool:
        """Stop taking work; wait up to timeout for running items. True if all finished."""
        self.halt()
        deadline = time.monotonic() + timeout
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))
        alive = [t for t in self._threads if t.is_alive()]
        self._threads = alive
        return not alive

    def unfinished(self) -> list[Item]:
        """Items that did not run to an end: still running, queued, waiting for a retry or a follow-up
        (what a stopped queue leaves for the next start)."""
        with self._cond:
            st = self._state
            return [*st.running.values(), *st.pending.values(), *st.rerun.values()]

    def _next(self) -> Item | None:
        """The next item to run (see the class: round robin over projects under their cap, oldest ready
        item of the chosen project); blocks until there is one or stop."""
        with self._cond:
            while not self._stopping:
                item, soonest = self._pick(self.clock())
                if item is not None:
                    return item
                # Wait for a submit/wake/finish; with a real clock also until the next backoff expires.
                timeout = None if soonest is None else min(max(soonest - self.clock(), 0.001), 1.0)
                self._cond.wait(timeout)
            return None

    def _pick(self, now: float) -> tuple[Item | None, float | None]:
        """Move the chosen item to running (with the lock held); else None and the soonest backoff
        deadline among items not yet due. One pass over the pending items, oldest first."""
        st = self._state
        # After the project picked last: one that submits its first item while another ran alone
        # (appended behind it) is next in line.
        order = st.projects[st.last + 1:] + st.projects[:st.last + 1]
        rank = {p: n for n, p in enumerate(order)}
        running: dict[str | None, int] = {}
        for i in st.running.values():
            running[i.project] = running.get(i.project, 0) + 1
        full = {p for p in order if running.get(p, 0) >= self._cap(p)}
        best: Item | None = None
        soonest: float | None = None
        for key, item in st.pending.items():
            if key in st.running:
                continue
            if item.not_before > now:
                soonest = item.not_before if soonest is None else min(soonest, item.not_before)
                continue
            if item.project in full or (best is not None and rank[item.project] >= rank[best.project]):
                continue
            best = item
            if rank[item.project] == 0:
                break  # the cursor's own project: nothing ranks higher
        if best is None:
            return None, soonest
        del st.pending[best.key]
        st.running[best.key] = best
        st.last = st.projects.index(best.project)
        return best, soonest

    def _worker(self) -> None:
        while (item := self._next()) is not None:
            self._emit("started", item)
            started = time.monotonic()
            try:
                result = self._run(item)
            except OdooOpsError as exc:
                result = Result.retry(exc.to_dict()) if is_transient(exc) else Result("failed", exc.to_dict())
            except Exception as exc:  # a bug must fail one item, not kill the worker
                log.exception("work item %s crashed", item.key)
                result = Result("failed", {"error": "INTERNAL", "message": f"{type(exc).__name__}: {exc}"})
            self._emit("finished", item, result=result, seconds=time.monotonic() - started)
            self._finish(item, result)

    def _finish(self, item: Item, result: Result) -> None:
        retry: Item | None = None
        event: tuple[str, Item, dict[str, Any]] | None = None
        with self._cond:
            st = self._state
            st.running.pop(item.key, None)
            follow = st.rerun.pop(item.key, None)
            if result.status == "retry":
                if item.attempt + 1 >= self.backoff.max_attempts:
                    event = ("gave_up", item, {"error": result.error})
                else:
                    delay = self.backoff.delay(item.attempt)
                    base = follow or item
                    payload = result.retry_payload if result.retry_payload is not None else item.payload
                    if follow is not None:
                        payload = self._merge(payload, follow.payload)
                    retry = Item(item.key, base.reason, payload, attempt=item.attempt + 1,
                                 not_before=self.clock() + delay, submitted_at=base.submitted_at,
                                 coalesced=base.coalesced, project=item.project)
                    st.pending[item.key] = retry
                    event = ("retry", retry, {"error": result.error, "delay": delay})
                    follow = None
            if follow is not None:
                follow.not_before = max(follow.not_before, self.clock())
                st.pending[item.key] = follow
            self._cond.notify_all()
        if event is not None:
            self._emit(event[0], event[1], **event[2])


# ---------------------------------------------------------------- the daemon's payload and claims


@dataclass(frozen=True)
class Work:
    """The payload of a queued branch: why it runs beyond "plan it fresh"."""

    drift: bool = False
    orphans: frozenset[str] = frozenset()
    replay: PlanOutcome | None = None  # retry of a transient failure the state file records as failed
    hinted_at: float | None = None  # when the webhook that caused it arrived (latency metric)


def merge_work(old: Work | None, new: Work | None) -> Work:
    old, new = old or Work(), new or Work()
    hinted = [t for t in (old.hinted_at, new.hinted_at) if t is not None]
    return Work(drift=old.drift or new.drift, orphans=old.orphans | new.orphans,
                replay=new.replay or old.replay, hinted_at=min(hinted) if hinted else None)


class Records:
    """A small JSON object on disk (name -> details), written atomically; the daemon's durable notes
    to itself, so a restart (or kill -9) loses none of them."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        # The parsed file and the stat it was read at: every reconcile asks (claims of 1,000
        # environments are ~100 KB of JSON), and it changes only when an environment comes or goes.
        self._cache: tuple[tuple[int, int, int] | None, dict[str, dict[str, Any]]] = (None, {})

    def _stamp(self) -> tuple[int, int, int] | None:
        try:
            st = self.path.stat()
        except OSError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def all(self) -> dict[str, dict[str, Any]]:
        stamp = self._stamp()
        cached_stamp, cached = self._cache
        if stamp is not None and stamp == cached_stamp:
            return dict(cached)
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        data = data if isinstance(data, dict) else {}
        self._cache = (stamp, data)
        return dict(data)

    def _write(self, data: dict[str, dict[str, Any]]) -> None:
        write_atomic(self.path, json.dumps(data, indent=1, sort_keys=True), dir_mode=0o777)
        self._cache = (self._stamp(), dict(data))

    def add(self, entries: dict[str, dict[str, Any]], replace: bool = False) -> bool:
        """Add entries (keep existing ones unless replace); True if the file changed."""
        with self._lock:
            data = self.all()
            new = {k: v for k, v in entries.items() if replace or k not in data}
            if new:
                self._write({**data, **new})
            return bool(new)

    def remove(self, names: set[str]) -> bool:
        with self._lock:
            data = self.all()
            if not names & set(data):
                return False
            self._write({k: v for k, v in data.items() if k not in names})
            return True


class Claims(Records):
    """Write-ahead record of the environments this daemon started to build, per project.

    An environment claimed here but neither desired nor observed is an orphan this installation
    made (say, killed mid-create after its branch was deleted): the sweep destroys it. Labelled
    resources nobody here claimed are reported, never removed: the engine may be shared.
    """

    def claim(self, envs: dict[str, tuple[str, str | None]]) -> None:
        self.add({e: {"branch": b, "tier": t, "since": time.time()} for e, (b, t) in envs.items()})

    def release(self, envs: set[str]) -> None:
        self.remove(envs)
