"""The poll loop: refs round trip, fetch if changed, plan if anything moved, queue the work."""

from __future__ import annotations

import logging
import random
import time
from typing import TYPE_CHECKING, Any

from reconciler.controller.daemon.shared import ACTIVE, MAX_HINTED, NOTES_RETRY_MAX_S
from reconciler.controller.planning import PlanOutcome, Project, compute_plan, observed_key, ttl_deadline
from reconciler.controller.workqueue import Work
from reconciler.core.model import ActionKind, ObservedEnv
from reconciler.errors import OdooOpsError
from reconciler.sources.notes import push_notes
from reconciler.sources.remote import redact_url

if TYPE_CHECKING:
    import threading
    from collections.abc import Callable

    from reconciler.controller.daemon.shared import DaemonConfig
    from reconciler.controller.daemon.shared_queue import ProjectQueue
    from reconciler.controller.workqueue import Records, WorkQueue
    from reconciler.platform.metrics import Metrics

log = logging.getLogger("reconciler.controller.daemon")  # one logger for all the daemon's parts


class Poller:
    """Polls the remote (now, on a webhook hint, or on its timer) and turns plan changes into queued work."""

    if TYPE_CHECKING:  # the daemon's state and parts this one uses (set in Daemon.__init__)
        clock: Callable[[], float]
        _closed: frozenset[str]
        closed: Records
        config: DaemonConfig
        _force_plan: bool
        _hint_at: float | None
        _hint_lock: threading.Lock
        _hinted: set[str]
        _last_key: tuple[Any, ...] | None
        metrics: Metrics
        _notes_retry: tuple[bool, float, float]
        polls: int
        queue: WorkQueue | ProjectQueue
        _ready: threading.Event
        request_events: Records
        _shared: tuple[Any, float, PlanOutcome] | None
        _status: dict[str, Any]
        _stop: threading.Event
        _ttl_deadline: float
        _wake: threading.Event

        def _confirm_request_events(self, project: Project) -> Project: ...

        def _project(self) -> Project: ...

        def _resume_parked(self) -> None: ...

        def _start_backups(self) -> None: ...

        def clear_stale_oneshots(self) -> list[str]: ...

        def sweep(self) -> dict[str, list[str]]: ...

    def _poll_loop(self) -> None:
        # Restart safety: nothing runs until the leftovers of a killed apply are cleared.
        try:
            self.clear_stale_oneshots()
        except Exception:
            log.exception("could not clear the one-shot containers of an interrupted apply")
        self.queue.start()
        self._resume_parked()
        last_start = 0.0
        last_sweep = float("-inf")
        while not self._stop.is_set():
            gap = self.config.min_poll_gap - (time.monotonic() - last_start)
            if gap > 0 and self._stop.wait(gap):
                break
            self._wake.clear()
            last_start = time.monotonic()
            sweep_due = time.monotonic() - last_sweep >= self.config.sweep_interval
            try:
                self.poll_once(resync=sweep_due)
                self._start_backups()
                if sweep_due:
                    last_sweep = time.monotonic()
                    self.sweep()
            except OdooOpsError as exc:
                log.warning("poll failed: %s", exc, extra={"code": exc.code})
                self._status = {**self._status, "last_error": exc.to_dict()}
            except Exception:
                log.exception("poll crashed")
            spread = 1 + self.config.jitter * (2 * random.random() - 1)
            self._wake.wait(max(0.0, self.config.poll_interval * spread - (time.monotonic() - last_start)))


    def poll_once(self, resync: bool = False) -> PlanOutcome | None:
        """One poll: refs round trip, fetch if changed, plan if anything moved, queue the work."""
        project = self._project()
        with self._hint_lock:
            hinted, hint_at = self._hinted, self._hint_at
            self._hinted, self._hint_at = set(), None
        trigger = "hint" if hint_at is not None else "timer"
        started = time.perf_counter()
        first = not self._ready.is_set()
        fresh = True  # the mirror agrees with the remote as of now (None from refresh_if_changed: equal)
        try:
            fetched = project.source.refresh() if first else project.source.refresh_if_changed()
        except OdooOpsError as exc:
            self.metrics.polls.labels(trigger=trigger, result="error").inc()
            if first:
                raise
            # The mirror is still a consistent snapshot: TTLs and finished applies are acted on.
            log.warning("poll of %s failed (%s); planning from the mirror", redact_url(self.config.repo), exc.code,
                        extra={"code": exc.code})
            self._status = {**self._status, "last_error": exc.to_dict()}
            fetched = None
            fresh = False
        changed = first or (fetched is not None and fetched.changed)
        self.metrics.poll_seconds.labels(changed=str(changed).lower()).observe(time.perf_counter() - started)
        self.metrics.polls.labels(trigger=trigger, result="changed" if changed else "unchanged").inc()
        self.polls += 1
        now = self.clock()
        key = observed_key(project)
        self._push_pending_notes(project)
        if fresh:  # only a mirror that agrees with the remote can confirm an open or close
            project = self._confirm_request_events(project)
        forced, self._force_plan = self._force_plan, False
        if not (changed or resync or forced or now >= self._ttl_deadline or key != self._last_key):
            return None
        targets = project.source.ref_targets()  # one listing of the refs for the whole plan, read after any push
        if self._closed and changed:
            # A closed request whose ref is gone needs no record: the planner sees it vanish.
            gone = {b for b in self._closed if f"refs/{b}/head" not in targets}
            if gone and self.closed.remove(gone):
                self._closed = frozenset(self.closed.all())
                project = self._project()
        outcome = compute_plan(project, now=now, refresh=False, targets=targets)
        observed = project.observed()
        self._ttl_deadline = ttl_deadline(observed, outcome.plan)
        if project.memo is not None:
            self._shared = (project.memo[0], self._ttl_deadline, outcome)
        for action in outcome.plan.actions:
            if action.action in ACTIVE:
                # The webhook latency is attributed only to the branches the webhooks named.
                at = hint_at if action.branch in hinted or len(hinted) >= MAX_HINTED else None
                self.queue.submit(action.branch, action.reason, Work(hinted_at=at))
        self._publish(outcome, observed, key, hinted)
        self._ready.set()
        self.metrics.ready.set(1)
        return outcome


    def _push_pending_notes(self, project: Project) -> None:
        """Notes an apply could not push (another writer kept winning the race) are pushed from
        the poll loop, with their own backoff, instead of waiting for the next apply."""
        pending, next_try, delay = self._notes_retry
        if not pending or time.monotonic() < next_try or not project.source.is_mirror:
            return

        try:
            push_notes(project.source.repo, self.config.repo, ref=project.source.notes_ref)
            self._notes_retry = (False, 0.0, 1.0)
        except OdooOpsError as exc:
            # Jittered, and capped at NOTES_RETRY_MAX_S: a lost race is cheap to retry, and the status
            # note is what people read (one minute between tries left a busy remote's notes stale).
            wait = delay * random.uniform(0.5, 1.0)
            log.warning("notes still not pushed (%s); next try in %.1fs", exc.code, wait)
            self._notes_retry = (True, time.monotonic() + wait, min(delay * 2, NOTES_RETRY_MAX_S))

    def _publish(self, outcome: PlanOutcome, observed: dict[str, ObservedEnv], key: tuple[Any, ...],
                 hinted: set[str]) -> None:
        counts: dict[tuple[str, str], int] = {}
        for obs in observed.values():
            counts[(obs.tier, obs.state)] = counts.get((obs.tier, obs.state), 0) + 1
        blocked = [a for a in outcome.plan.actions if a.action is ActionKind.BLOCKED]
        for a in blocked:
            if a.env not in observed:
                counts[(a.tier or "none", "blocked")] = counts.get((a.tier or "none", "blocked"), 0) + 1
        self.metrics.set_environments(counts)
        self._last_key = key
        self._status = {
            "repo": redact_url(self.config.repo), "last_poll_at": time.time(),
            "plan_digest": outcome.plan.plan_digest, "desired": sorted(s.name for s in outcome.plan.environments),
            "environments": {n: {"branch": o.branch, "tier": o.tier, "state": o.state, "commit": o.commit}
                             for n, o in observed.items()},
            "blocked": [{"env": a.env, "branch": a.branch, "reason": a.reason, "remediation": a.remediation}
                        for a in blocked],
            "last_hinted": sorted(hinted)[:50], "orphans": self._status.get("orphans", {}),
            "scratch": self._status.get("scratch", {}), "access": self._status.get("access", {}),
            "closed_requests": sorted(self._closed),
            "pending_request_events": sorted(self.request_events.all()),
        }

