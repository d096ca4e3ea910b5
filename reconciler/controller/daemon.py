"""The reconciler daemon: poll (and webhook hints) -> plan -> work queue -> apply, continuously."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import psycopg

from reconciler.controller.apply import Applier
from reconciler.controller.backup_schedule import BackupScheduler
from reconciler.controller.planning import PlanOutcome, Project, compute_plan, observed_key, project_id, ttl_deadline
from reconciler.controller.workqueue import (
    Backoff,
    Claims,
    Item,
    Records,
    Result,
    Work,
    WorkQueue,
    is_transient,
    merge_work,
)
from reconciler.core.change_requests import CLOSING, REOPENING, head_ref, is_change_request
from reconciler.core.model import Action, ActionKind, ObservedEnv, Plan, digest
from reconciler.data import access_sweep, scratch
from reconciler.errors import OdooOpsError
from reconciler.executors.docker_runtime import DockerRuntime
from reconciler.executors.postgres import Postgres
from reconciler.executors.router import CaddyRouter
from reconciler.platform.env_lock import is_busy
from reconciler.platform.host import HostSettings
from reconciler.platform.metrics import Metrics, NotesRetryCounter
from reconciler.platform.state_store import StateStore
from reconciler.sources.notes import push_notes
from reconciler.sources.remote import redact_url

if TYPE_CHECKING:
    from reconciler.core.hints import Hint

log = logging.getLogger(__name__)

ACTIVE = (ActionKind.CREATE, ActionKind.UPDATE, ActionKind.REDEPLOY, ActionKind.DESTROY)
MAX_HINTED = 1024  # distinct hinted branches kept between two polls; beyond, the poll covers all anyway
# GitHub, Gitea and GitLab keep refs/pull/N/head (refs/merge-requests/N/head) after a close or
# merge: only an event says the request is closed. Such an event is written down as pending and
# takes effect only when the mirror, freshly fetched, has the request's head ref at the commit the
# event names (docs/adr/0025-webhook-replay-journal-and-request-state.md).


class ApplierLike(Protocol):
    def apply(self, outcome: PlanOutcome) -> Any: ...


@dataclass(frozen=True)
class DaemonConfig:
    repo: str
    state_dir: Path
    poll_interval: float = 60.0
    max_concurrent: int = 10
    policy_file: Path | None = None
    sweep_interval: float = 300.0  # orphans, runtime drift, resubmission of unconverged work
    jitter: float = 0.2  # +-20% on the poll interval, so many daemons do not poll in step
    min_poll_gap: float = 0.05  # a webhook flood costs at most one poll per gap
    backoff: Backoff = field(default_factory=lambda: Backoff(base=5.0, cap=300.0, max_attempts=8))
    backup_tick: float = 60.0  # seconds between two looks at the environments' backup schedules
    # How long an open/close event whose head commit the mirror does not have (yet) stays pending:
    # the provider may move refs/pull/N/head a moment after it sends the event.
    request_event_wait: float = 300.0


NOTES_RETRY_MAX_S = 8.0


def branch_outcome(outcome: PlanOutcome, branch: str) -> PlanOutcome:
    """What compute_plan(branches=[branch]) returns, cut from a plan of every branch."""
    plan = outcome.plan
    envs = tuple(s for s in plan.environments if s.branch == branch)
    cut = replace(plan, environments=envs, actions=tuple(a for a in plan.actions if a.branch == branch),
                  errors=tuple(e for e in plan.errors if e.branch == branch),
                  plan_digest=digest([plan.plan_digest, branch]))
    digests = outcome.digests or {}
    return PlanOutcome(plan=cut, artifacts={s.name: outcome.artifacts[s.name] for s in envs},
                       heads=outcome.heads, seconds=0.0, cached=True,
                       digests={s.name: digests[s.name] for s in envs if s.name in digests})


class SharedStateStore(StateStore):
    """The state file with one in-process lock per path: workers record different environments
    concurrently, and StateStore's read-modify-write would otherwise lose one of two updates."""

    _locks: ClassVar[dict[str, threading.RLock]] = {}
    _guard = threading.Lock()

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        with self._guard:
            self._lock = self._locks.setdefault(str(path.resolve()), threading.RLock())

    def record(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        with self._lock:
            return super().record(*args, **kwargs)

    def set_state(self, *args: Any, **kwargs: Any) -> None:
        with self._lock:
            super().set_state(*args, **kwargs)

    def forget(self, name: str) -> None:
        with self._lock:
            super().forget(name)


class Daemon:
    """Polls the repository, turns plan changes into queued work, and applies it with workers."""

    def __init__(self, config: DaemonConfig, host: HostSettings | None, *,
                 applier_factory: Callable[[Project], ApplierLike] | None = None,
                 clock: Callable[[], float] = time.time, metrics: Metrics | None = None) -> None:
        self.config = config
        self.host = host
        self.clock = clock  # wall clock for TTLs; injectable so tests can move time forward
        self.metrics = metrics or Metrics()
        self._applier_factory = applier_factory or self._real_applier
        self.dir = config.state_dir / "projects" / project_id(config.repo)
        self.claims = Claims(self.dir / "daemon-claims.json")
        self.closed = Records(self.dir / "daemon-closed-requests.json")
        self.request_events = Records(self.dir / "daemon-request-events.json")  # open/close not confirmed yet
        self._events_lock = threading.Lock()  # a hint arriving while the poll confirms is kept for the next
        self._closed = frozenset(self.closed.all())
        self._force_plan = False
        self.queue = WorkQueue(self._reconcile, config.max_concurrent, backoff=config.backoff,
                               merge=merge_work)
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
        Project.open(self.config.repo, self.config.state_dir, self.config.policy_file).cache.close()
        notes_log = logging.getLogger("reconciler.sources.notes")
        notes_log.setLevel(min(notes_log.getEffectiveLevel(), logging.INFO))
        notes_log.addHandler(self._notes_handler)
        self._poller = threading.Thread(target=self._poll_loop, name="odooops-poller", daemon=True)
        self._poller.start()

    def stop(self, grace: float = 30.0) -> None:
        self._stop.set()
        self._wake.set()
        self.queue.stop(grace)
        if self._poller is not None:
            self._poller.join(grace)
        if self._backup_thread is not None:
            self._backup_thread.join(grace)
        logging.getLogger("reconciler.sources.notes").removeHandler(self._notes_handler)
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def is_ready(self) -> bool:
        return self._ready.is_set()

    def is_alive(self) -> bool:
        return self._poller is not None and self._poller.is_alive() and not self._stop.is_set()

    def add_apply_hook(self, hook: Callable[[str, Action, Work], None]) -> None:
        """hook(branch, action, work) runs in the worker just before an apply starts."""
        self._hooks.append(hook)

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

    def status(self) -> dict[str, Any]:
        return {**self._status, "ready": self.is_ready(), "queue": self.queue.snapshot(),
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
            project = Project.open(self.config.repo, self.config.state_dir, self.config.policy_file)
            project.store = SharedStateStore(project.store.path)
            all_heads = project.heads
            # Closed requests are planned as gone (destroyed), although their refs remain.
            project.heads = lambda refs_digest=None: [  # type: ignore[method-assign]  # minus closed requests
                h for h in all_heads(refs_digest) if h.branch not in self._closed]
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
        return Applier(project, self.host, self._progress)

    def add_progress_hook(self, hook: Callable[[str, str, str, str], None]) -> None:
        """hook(env, step, status, detail) for every step of every apply (status and tests)."""
        self._progress_hooks.append(hook)

    def _progress(self, env: str, step: str, status: str, detail: str) -> None:
        if status == "start":
            self._applying[env] = {"step": step, "since": f"{time.time():.3f}"}
        log.info("%s %s %s %s", env, step, status, detail)
        for hook in self._progress_hooks:
            hook(env, step, status, detail)

    # ------------------------------------------------------------------ polling

    def _poll_loop(self) -> None:
        # Restart safety: nothing runs until the leftovers of a killed apply are cleared.
        try:
            self.clear_stale_oneshots()
        except Exception:
            log.exception("could not clear the one-shot containers of an interrupted apply")
        self.queue.start()
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
                log.warning("poll failed: %s", exc)
                self._status = {**self._status, "last_error": exc.to_dict()}
            except Exception:
                log.exception("poll crashed")
            spread = 1 + self.config.jitter * (2 * random.random() - 1)
            self._wake.wait(max(0.0, self.config.poll_interval * spread - (time.monotonic() - last_start)))

    def _start_backups(self) -> None:
        """After the first successful poll: backups take minutes, so they get their own thread."""
        if self.backups is None or self._backup_thread is not None or not self._ready.is_set():
            return
        self._backup_thread = threading.Thread(target=self._backup_loop, name="odooops-backups", daemon=True)
        self._backup_thread.start()

    def _backup_loop(self) -> None:
        assert self.backups is not None
        while not self._stop.is_set():
            try:
                self.backups.tick()
            except Exception:  # the scheduler records per-env failures itself; this is a bug
                log.exception("backup scheduler tick crashed")
            if self._stop.wait(self.config.backup_tick):
                break

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
            log.warning("poll of %s failed (%s); planning from the mirror", redact_url(self.config.repo), exc.code)
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
        if self._closed and changed:
            # A closed request whose ref is gone needs no record: the planner sees it vanish.
            refs = project.source.local_refs()
            gone = {b for b in self._closed if f"refs/{b}/head" not in refs}
            if gone and self.closed.remove(gone):
                self._closed = frozenset(self.closed.all())
                project = self._project()
        outcome = compute_plan(project, now=now, refresh=False)
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

    def _push_pending_notes(self, project: Project) -> None:
        """Notes an apply could not push (another writer kept winning the race) are pushed from
        the poll loop, with their own backoff, instead of waiting for the next apply."""
        pending, next_try, delay = self._notes_retry
        if not pending or time.monotonic() < next_try or not project.source.is_mirror:
            return

        try:
            push_notes(project.source.repo, self.config.repo)
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

    # ------------------------------------------------------------------ one branch

    def _reconcile(self, item: Item) -> Result:
        work: Work = item.payload or Work()
        project = self._project()
        started = time.perf_counter()
        outcome = self._branch_plan(project, item.key)
        active = [a for a in outcome.plan.actions if a.action in ACTIVE]
        if not active:
            fallback = self._fallback(project, item.key, work, outcome)
            if fallback is None:
                return Result("noop")
            outcome = fallback
            active = [a for a in outcome.plan.actions if a.action in ACTIVE] or list(outcome.plan.actions)
        self.claims.claim({a.env: (a.branch, a.tier) for a in active if a.action is not ActionKind.DESTROY})
        for action in active:
            if work.hinted_at is not None:
                self.metrics.webhook_to_apply.observe(max(0.0, time.time() - work.hinted_at))
            for hook in self._hooks:
                hook(item.key, action, work)
        try:
            report = self._applier().apply(outcome)
        finally:
            for action in active:
                self._applying.pop(action.env, None)
        kinds = {a.env: str(a.action) for a in active}
        done = set()
        transient = None
        for env in report.environments:
            self.metrics.apply_results.labels(action=env.action, result=env.result).inc()
            if env.result == "ok" and env.action == "destroy":
                done.add(env.env)
            if env.result != "ok" and is_transient(env.error) and kinds.get(env.env) != "destroy":
                transient = env.error
        self.claims.release(done)
        if getattr(report, "notes_pushed", None) is False:
            self._notes_retry = (True, 0.0, 1.0)
            self._wake.set()
        result = "ok" if report.ok else "failed"
        self.metrics.reconcile_seconds.labels(result=result).observe(time.perf_counter() - started)
        if transient is not None:
            return Result.retry(transient, replace(work, replay=outcome, hinted_at=None))
        return Result(result, None if report.ok else {"environments": [e.env for e in report.environments
                                                                       if e.result != "ok"]})

    def _branch_plan(self, project: Project, branch: str) -> PlanOutcome:
        """The poller's plan cut to one branch when refs and observed state are still those it
        planned (no second full plan per apply); otherwise a fresh plan of that branch."""
        now = self.clock()
        shared = self._shared
        if shared is not None and now < shared[1]:
            key = (project.source.refs_digest(), observed_key(project), None)
            if key == shared[0]:
                return branch_outcome(shared[2], branch)
        return compute_plan(project, branches=[branch], now=now, refresh=False)

    def _fallback(self, project: Project, branch: str, work: Work, fresh: PlanOutcome) -> PlanOutcome | None:
        """No planned change: an orphan, a transient failure to replay, or runtime drift may remain."""
        entries = project.store.entries()
        if work.orphans:
            observed = project.observed()
            desired = {s.name for s in fresh.plan.environments}
            gone = sorted(e for e in work.orphans if e not in desired and e not in observed)
            if gone:
                actions = tuple(Action(env=e, action=ActionKind.DESTROY, branch=branch, tier=None,
                                       reason="orphan: resources of an environment that is neither desired "
                                              "nor recorded") for e in gone)
                self.metrics.orphans_removed.inc(len(gone))
                plan = Plan(environments=(), actions=actions, errors=(), ignored=(),
                            plan_digest=digest([a.to_json() for a in actions]))
                return PlanOutcome(plan=plan, artifacts={}, heads=0, seconds=0.0)
        if work.replay is not None:
            wanted = [a for a in work.replay.plan.actions if a.action in ACTIVE]
            if wanted and all(entries.get(a.env, {}).get("state") == "failed"
                              and entries.get(a.env, {}).get("commit") == a.commit for a in wanted):
                return work.replay
        if work.drift and fresh.plan.actions and all(
                entries.get(a.env, {}).get("state") == "running" for a in fresh.plan.actions):
            return fresh  # the Applier redeploys a no-op whose containers are gone
        return None

    def _on_queue_event(self, event: str, item: Item, details: dict[str, Any]) -> None:
        if event not in ("started", "finished"):
            self.metrics.queue_events.labels(event=event).inc()
        if event == "retry":
            log.warning("%s: transient failure (%s); retry %d in %.1fs", item.key,
                        (details.get("error") or {}).get("error"), item.attempt, details.get("delay", 0))
        elif event == "gave_up":
            log.error("%s: giving up after %d attempts: %s", item.key, item.attempt + 1, details.get("error"))
        self.metrics.queue_depth.set(self.queue.depth())
        self.metrics.queue_running.set(len(self.queue.running()))

    # ------------------------------------------------------------------ sweeps

    def _runtime(self) -> Any:
        if self.host is None:
            return None

        runtime = getattr(self._local, "runtime", None)
        if runtime is None:
            runtime = self._local.runtime = DockerRuntime(self.host.docker_host)
        return runtime

    def _routes(self) -> dict[str, Any] | None:
        assert self.host is not None
        try:
            return CaddyRouter(self.host.caddy_admin, server=self.host.caddy_server).routes()
        except OdooOpsError as exc:
            log.warning("cannot read the routes (%s); route drift not checked", exc.code)
            return None

    def clear_stale_oneshots(self) -> list[str]:
        """At start, before any worker runs: one-shot containers (init, update, tests) of this
        project's environments belong to an apply that was killed; they must not race the rerun."""
        runtime = self._runtime()
        if runtime is None:
            return []
        project = self._project()
        mine = set(self.claims.all()) | set(project.observed())
        removed = []
        for env, obs in runtime.observe().items():
            for c in obs.containers:
                if env in mine and c.oneshot and c.project in (None, project.id):
                    with contextlib.suppress(Exception):
                        runtime.client.containers.get(c.id).remove(force=True)
                        removed.append(c.name)
        if removed:
            log.warning("removed %d one-shot containers of an interrupted apply: %s", len(removed),
                        ", ".join(removed))
        return removed

    def sweep(self) -> dict[str, list[str]]:
        """Orphans (claimed: destroyed; unclaimed: reported), runtime drift, unpushed notes."""
        project = self._project()
        outcome = compute_plan(project, now=self.clock(), refresh=False)
        observed = project.observed()
        desired = {s.name for s in outcome.plan.environments}
        desired |= {a.env for a in outcome.plan.actions if a.action is ActionKind.BLOCKED}
        busy = set(self.queue.running()) | {r["key"] for r in self.queue.snapshot()["pending"]}
        runtime = self._runtime()
        labelled = runtime.observe() if runtime is not None else {}
        claims = self.claims.all()
        claimed = sorted(e for e in claims if e not in desired and e not in observed)
        unclaimed = sorted(set(labelled) - desired - set(observed) - set(claims))
        self.metrics.orphans.labels(kind="claimed").set(len(claimed))
        self.metrics.orphans.labels(kind="unclaimed").set(len(unclaimed))
        for env in claimed:
            branch = str(claims[env].get("branch") or env)
            log.warning("orphan %s (branch %s is gone and nothing records it): destroying", env, branch)
            if branch not in busy:
                self.queue.submit(branch, "orphan", Work(orphans=frozenset({env})))
        if unclaimed:
            log.warning("labelled resources of environments this daemon neither wants nor made (left "
                        "alone; another installation may own them): %s", ", ".join(unclaimed))
        drifted = []
        routes = self._routes() if runtime is not None else None
        for name, obs in observed.items():
            if runtime is None or obs.state != "running" or name not in desired or obs.branch in busy:
                continue
            if self.host is not None and is_busy(self.host.state_dir, name):
                continue  # a restore or rollback stopped its containers on purpose
            rt = labelled.get(name)
            web = rt.container("web") if rt is not None else None
            route = routes.get(name) if routes is not None else None
            if web is None or not web.running:
                why = f"its web container is {'missing' if web is None else web.state}"
            elif routes is not None and (route is None or (route.upstream, route.websocket_upstream)
                                         != (rt.web_upstream, rt.websocket_upstream)):  # type: ignore[union-attr]  # web => rt
                why = "its route is missing or points elsewhere (Caddy or dockerd restarted?)"
            else:
                continue
            drifted.append(name)
            log.warning("%s: %s; repairing", name, why)
            self.queue.submit(obs.branch, "runtime drift", Work(drift=True))
        if project.source.is_mirror and project.source.notes_ahead_of(project.source.remote_refs()):
            try:  # retries are counted from push_notes' log records (NotesRetryCounter)
                push_notes(project.source.repo, self.config.repo)
            except OdooOpsError as exc:
                log.warning("notes still not pushed: %s", exc.message)
        found = {"claimed": claimed, "unclaimed": unclaimed, "drifted": drifted}
        self._status = {**self._status, "orphans": found}
        if self.host is not None:
            found["scratch"] = self.sweep_scratch()
            found["access"] = self.sweep_access(project)
        return found

    def sweep_access(self, project: Project) -> list[str]:
        """Databases of this project's environments (and the platform's oo_* copies) that roles other than
        their own could reach: repaired (data.access_sweep); returns their names."""
        assert self.host is not None
        try:
            report = access_sweep.sweep(Postgres.from_host(self.host), set(project.store.entries()))
        except (OdooOpsError, psycopg.Error) as exc:
            log.warning("database access sweep skipped: %s", getattr(exc, "message", exc))
            return []
        for db, problems in report.repaired.items():
            log.warning("database %s was reachable beyond its own role (%s): repaired", db, "; ".join(problems))
        for db, why in report.failed.items():
            log.error("database %s is reachable beyond its own role and could not be repaired: %s", db, why)
        self._status = {**self._status, "access": report.to_json()}
        return sorted(report.repaired)

    def sweep_scratch(self) -> list[str]:
        """Scratch databases and filestores that a killed clone, restore or backup check left (data.scratch)."""
        assert self.host is not None
        try:
            report = scratch.sweep(Postgres.from_host(self.host), self.host)
        except (OdooOpsError, OSError, psycopg.Error) as exc:
            log.warning("scratch sweep skipped: %s", getattr(exc, "message", exc))
            return []
        self.metrics.scratch_removed.labels(what="database").inc(len(report.dropped))
        self.metrics.scratch_removed.labels(what="filestore").inc(len(report.removed))
        self.metrics.scratch_set_aside.set(len(report.set_aside))
        for name in report.dropped + report.removed:
            log.warning("removed %s: left behind by an interrupted data operation", name)
        if report.set_aside:
            log.warning("live data set aside by an interrupted swap, kept for you to check (drop it when the "
                        "environment is fine): %s", ", ".join(report.set_aside))
        self._status = {**self._status, "scratch": report.to_json()}
        return report.dropped + report.removed
