"""Webhook hints, and pull/merge request open and close events confirmed against the mirror's refs.

GitHub, Gitea and GitLab keep refs/pull/N/head (refs/merge-requests/N/head) after a close or
merge: only an event says the request is closed. Such an event is written down as pending and
takes effect only when the mirror, freshly fetched, has the request's head ref at the commit the
event names (docs/adr/0025-webhook-replay-journal-and-request-state.md).
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from reconciler.controller.daemon.shared import MAX_HINTED
from reconciler.controller.planning import Project
from reconciler.core.change_requests import CLOSING, REOPENING, head_ref, is_change_request

if TYPE_CHECKING:
    import threading

    from reconciler.controller.daemon.shared import DaemonConfig
    from reconciler.controller.workqueue import Records
    from reconciler.core.hints import Hint
    from reconciler.platform.metrics import Metrics

log = logging.getLogger("reconciler.controller.daemon")  # one logger for all the daemon's parts


class RequestTracker:
    """Records what webhooks said until the poll acts on it; confirms request open/close events."""

    if TYPE_CHECKING:  # the daemon's state and parts this one uses (set in Daemon.__init__)
        _closed: frozenset[str]
        closed: Records
        config: DaemonConfig
        _events_lock: threading.Lock
        _force_plan: bool
        _hint_at: float | None
        _hint_lock: threading.Lock
        _hinted: set[str]
        metrics: Metrics
        request_events: Records
        _wake: threading.Event

        def _project(self) -> Project: ...

    def hint(self, hint: Hint) -> None:
        """A webhook said these branches changed: poll now. The remote stays the truth; a pull/merge
        request's open or close event (which only events carry) is written down as pending and
        confirmed against the mirror's refs by the poll (`_confirm_request_events`)."""
        requests = {b for b in hint.branches if is_change_request(b)}
        if requests and hint.action in CLOSING | REOPENING:
            # On disk before the 202: a restart between answer and poll loses no close.
            event = {"action": hint.action, "head": hint.head, "delivery": hint.delivery,
                     "provider": hint.provider, "at": hint.received_at or time.time()}
            with self._events_lock:
                self.request_events.add({b: event for b in requests}, replace=True)
        with self._hint_lock:
            if len(self._hinted) < MAX_HINTED:
                self._hinted.update(hint.branches)
            at = hint.received_at or time.time()
            self._hint_at = at if self._hint_at is None else min(self._hint_at, at)
        self._wake.set()


    def _confirm_request_events(self, project: Project) -> Project:
        """Open/close events take effect when the repository agrees: the request's head ref is at the
        commit the event names. A replayed or stale event (the ref moved on, or is gone) is dropped."""
        with self._events_lock:
            changed = self._confirm_locked(project)
        if not changed:
            return project
        self._force_plan = True
        return self._project()  # drops the memo keyed by refs, which a closure does not change

    def _confirm_locked(self, project: Project) -> bool:
        pending = self.request_events.all()
        if not pending:
            return False
        refs = project.source.local_refs()
        now = time.time()
        closes: dict[str, dict[str, Any]] = {}
        opens: set[str] = set()
        done: set[str] = set()
        for branch, event in pending.items():
            at = float(event.get("at") or 0.0)
            ref = refs.get(head_ref(branch))
            if ref is None:
                log.info("%s: %s event (delivery %s) for a request whose ref is gone: nothing to do",
                         branch, event.get("action"), event.get("delivery"))
            elif ref == event.get("head"):
                if event.get("action") in CLOSING:
                    closes[branch] = event
                else:
                    opens.add(branch)
            elif now - at < self.config.request_event_wait:
                continue  # the provider may not have moved the ref yet: look again next poll
            else:
                log.warning("%s: %s event (delivery %s) ignored: it names commit %s but %s is at %s "
                            "(a stale or replayed delivery)", branch, event.get("action"), event.get("delivery"),
                            event.get("head"), head_ref(branch), ref)
                self.metrics.webhooks.labels(provider=str(event.get("provider")), outcome="unconfirmed").inc()
            done.add(branch)
        changed = self.closed.add(closes, replace=True) if closes else False
        changed = self.closed.remove(opens) | changed if opens else changed
        if changed:  # before the events leave the file: whoever sees them gone plans with the new set
            self._closed = frozenset(self.closed.all())
        self.request_events.remove(done)
        return changed

