"""The reconciler daemon: poll (and webhook hints) -> plan -> work queue -> apply, continuously.

`Daemon` holds the state and composes its parts, each a module of this package: `poller` (the poll
loop), `requests` (webhook hints, request open/close events), `scheduler` (queued branches become
applies; the backup thread) and `sweeper` (orphans, drift, notes, scratch data, database access).
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from reconciler.controller.apply import Applier
from reconciler.controller.backup_schedule import BackupScheduler
from reconciler.controller.daemon.poller import Poller
from reconciler.controller.daemon.requests import RequestTracker
from reconciler.controller.daemon.scheduler import Scheduler, branch_outcome
from reconciler.controller.daemon.shared import (
    ACTIVE,
    MAX_HINTED,
    NOTES_RETRY_MAX_S,
    ApplierLike,
    DaemonConfig,
    SharedStateStore,
)
from reconciler.controller.daemon.shared_queue import ProjectQueue, SharedQueue
from reconciler.controller.daemon.sweeper import Sweeper
from reconciler.controller.plan_snapshot import naming, project_dir
from reconciler.controller.planning import PlanOutcome, Project
from reconciler.controller.workqueue import Claims, Item, Records, Work, WorkQueue, merge_work
from reconciler.core.model import Action
from reconciler.errors import OdooOpsError
from reconciler.platform.host import HostSettings
from reconciler.platform.metrics import Metrics, NotesRetryCounter
from reconciler.sources.remote import redact_url

__all__ = ["ACTIVE", "MAX_HINTED", "NOTES_RETRY_MAX_S", "ApplierLike", "Daemon", "DaemonConfig", "SharedStateStore",
           "branch_outcome"]

log = logging.getLogger("reconciler.controller.daemon")  # one logger for all the daemon's parts


class Daemon(Poller, RequestTracker, Scheduler, Sweeper):
    """Polls the repository, turns plan changes into queued work, and applies it with workers."""

    def __init__(self, config: DaemonConfig, host: HostSettings | None, *,
                 applier_factory: Callable[[Project], ApplierLike] | None = None,
                 clock: Callable[[], float] = time.time, metrics: Metrics | None = None,
                 shared_queue: SharedQueue | None = None) -> None:
        self.config = config
        self.host = host
        self.clock = clock  # wall clock for TTLs; injectable so tests can move time forward
        self.metrics = metrics or Metrics()
        self._applier_factory = applier_factory or self._real_applier
        self.dir = project_dir(config.state_dir, config.repo, naming(config.state_dir, config.repo, config.project))
        self.claims = Claims(self.dir / "daemon-claims.json")
        self.closed = Records(self.dir / "daemon-closed-requests.json")
        self.request_events = Records(self.dir / "daemon-request-events.json")  # open/close not confirmed yet
        self.parked = Records(self.dir / "daemon-parked.json")  # branches a shutdown stopped: re-queued at start
        self._events_lock = threading.Lock()  # a hint arriving while the poll confirms is kept for the next
        self._closed = frozenset(self.closed.all())
        self._force_plan = False
        # One serve of several projects: the projects' daemons share one pool of workers, fairly.
        self.queue: WorkQueue | ProjectQueue = (
            shared_queue.view(config.project, self._reconcile) if shared_queue is not None and config.project
            else WorkQueue(self._reconcile, config.max_concurrent, backoff=config.backoff, merge=merge_work))
        self.queue.add_hook(self._on_queue_event)
        self._hooks: list[Callable[[str, Action, Work], None]] = []
        self._progress_hooks: list[Callable[[str, str, str, str], None]] = []
        self._local = threading.local()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._hint_lock = threading.Lock()
        self._hinted: set[str] = set()
        self._hint_at: float | None = None
        self._ready = threading.Event()
        self._poller: threading.Thread | None = None
        self._lock_fd: int | None = None
        self._status: dict[str, Any] = {}
        self._applying: dict[str, dict[str, str]] = {}
        self._commits: dict[str, str] = {}  # env -> the commit its running apply deploys (log fields)
        self._notes_handler = NotesRetryCounter(self.metrics)
        self._last_key: tuple[Any, ...] | None = None
        self._shared: tuple[Any, float, PlanOutcome] | None = None  # (memo key, valid until, full plan)
        self._ttl_deadline = float("-inf")
        self._notes_retry: tuple[bool, float, float] = (False, 0.0, 1.0)  # pending, next try, delay
        self.polls = 0
        self.backups: BackupScheduler | None = None
        self._backup_thread: threading.Thread | None = None
        if host is not None:  # without a host there is no data layer to back up with
            self.backups = BackupScheduler(self._project, host, clock, self.metrics)

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self._lock_fd = os.open(self.dir / "daemon.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock_fd)
            self._lock_fd = None
            raise OdooOpsError(
                "DAEMON_ALREADY_RUNNING", f"another odooops serve reconciles {redact_url(self.config.repo)} "
                f"with the state dir {self.config.state_dir}",
                f"stop it first (fuser {self.dir / 'daemon.lock'}), or use another --state-dir") from None
        Project.open(self.config.repo, self.config.state_dir, self.config.policy_file,
                     project=self.config.project).cache.close()
        notes_log = logging.getLogger("reconciler.sources.notes")
        notes_log.setLevel(min(notes_log.getEffectiveLevel(), logging.INFO))
        notes_log.addHandler(self._notes_handler)
        self._poller = threading.Thread(target=self._poll_loop, name="odooops-poller", daemon=True)
        self._poller.start()

    def request_stop(self) -> None:
        """Take no new work (the first moment of a shutdown: SIGTERM); running deploys park at their
        next step. `stop` then waits for them."""
        self._stop.set()
        self._wake.set()
        self.queue.halt()

    def stop(self, grace: float = 30.0) -> bool:
        """Stop: no new work, each running deploy finishes its current step and parks (within `grace`
        seconds), what never ran is recorded in `daemon-parked.json` for the next start, and every lock
        this daemon took is released. True when all of it happened within the grace period; False when a
        step was still running (it is cut short when the process exits, as by a crash)."""
        self.request_stop()
        deadline = time.monotonic() + grace
        finished = self.queue.stop(grace)
        self._park(self.queue.unfinished(), "stopped before it ran" if finished else "cut short by the stop")
        for thread in (self._poller, self._backup_thread):
            if thread is not None:
                thread.join(max(0.0, deadline - time.monotonic()))
                finished = finished and not thread.is_alive()
        logging.getLogger("reconciler.sources.notes").removeHandler(self._notes_handler)
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None
        return finished

    def _park(self, items: list[Item], why: str) -> None:
        entries = {}
        for item in items:
            work: Work = item.payload or Work()
            entries[item.key] = {"reason": item.reason, "why": why, "drift": work.drift,
                                 "orphans": sorted(work.orphans), "since": time.time()}
        if entries:
            # An entry already there says more: an apply this stop parked, or work an earlier stop parked
            # that has not run since (entries go when their branch runs to an end).
            self.parked.add(entries)
            log.info("parked %d branch(es) for the next start: %s", len(entries), ", ".join(sorted(entries)),
                     extra={"branches": sorted(entries)})

    def _resume_parked(self) -> None:
        """Queue what the last shutdown parked (before the first poll: it ran first then too)."""
        for branch, entry in sorted(self.parked.all().items()):
            work = Work(drift=bool(entry.get("drift")), orphans=frozenset(entry.get("orphans") or ()))
            self.queue.submit(branch, f"parked at the last stop: {entry.get('reason', '')}", work)
            log.info("%s: re-queued work parked at the last stop", branch, extra={"branch": branch})

    def stopping(self) -> bool:
        return self._stop.is_set()

    def is_ready(self) -> bool:
        return self._ready.is_set()

    def is_alive(self) -> bool:
        return self._poller is not None and self._poller.is_alive() and not self._stop.is_set()

    def add_apply_hook(self, hook: Callable[[str, Action, Work], None]) -> None:
        """hook(branch, action, work) runs in the worker just before an apply starts."""
        self._hooks.append(hook)


    def status(self) -> dict[str, Any]:
        return {**self._status, "ready": self.is_ready(), "queue": self.queue.snapshot(),
                "parked": sorted(self.parked.all()),
                "applying": dict(self._applying),
                "backups": self.backups.status() if self.backups is not None else None}

    def enqueue(self, branch: str, reason: str) -> None:
        """Queue a branch for reconciling now (the API's redeploy): a no-op plan still repairs
        runtime drift and routes, like a sweep."""
        self.queue.submit(branch, reason, Work(drift=True))

    def project(self) -> Project:
        """This thread's Project (the API reads state, notes and the mirror through it)."""
        return self._project()

    # ------------------------------------------------------------------ per-thread projects

    def _project(self) -> Project:
        """One Project (pygit2 repository, memo) per thread: pygit2 objects are not shared."""
        project: Project | None = getattr(self._local, "project", None)
        if project is None:
            project = Project.open(self.config.repo, self.config.state_dir, self.config.policy_file,
                                   project=self.config.project)
            project.store = SharedStateStore(project.store.path)
            all_heads = project.heads
            # Closed requests are planned as gone (destroyed), although their refs remain.
            project.heads = lambda refs_digest=None, targets=None: [  # type: ignore[method-assign]  # minus closed
                h for h in all_heads(refs_digest, targets) if h.branch not in self._closed]
            self._local.project = project
        if getattr(self._local, "closed", None) is not self._closed:
            project.memo = None  # the memo is keyed by refs, which a closure does not change
            self._local.closed = self._closed
        return project

    def _applier(self) -> ApplierLike:
        applier: ApplierLike | None = getattr(self._local, "applier", None)
        if applier is None:
            applier = self._local.applier = self._applier_factory(self._project())
        return applier

    def _real_applier(self, project: Project) -> ApplierLike:
        if self.host is None:
            raise OdooOpsError("HOST_NOT_CONFIGURED", "the daemon has no host settings",
                               "set -a && . .work/services.env && set +a")
        return Applier(project, self.host, self._progress, should_park=self._stop.is_set)

    def add_progress_hook(self, hook: Callable[[str, str, str, str], None]) -> None:
        """hook(env, step, status, detail) for every step of every apply (status and tests)."""
        self._progress_hooks.append(hook)

    def _progress(self, env: str, step: str, status: str, detail: str) -> None:
        if status == "start":
            self._applying[env] = {"step": step, "since": f"{time.time():.3f}"}
        commit = self._commits.get(env)
        log.info("%s %s %s %s", env, step, status, detail,
                 extra={"env": env, "step": step, "status": status, **({"commit": commit} if commit else {})})
        for hook in self._progress_hooks:
            hook(env, step, status, detail)
