"""What runs when: a queued branch becomes one apply (or a repair, or nothing); backups get their own thread."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from reconciler.controller.daemon.shared import ACTIVE
from reconciler.controller.planning import PlanOutcome, Project, compute_plan, observed_key
from reconciler.controller.workqueue import Item, Result, Work, is_transient
from reconciler.core.model import Action, ActionKind, Plan, digest

if TYPE_CHECKING:
    from collections.abc import Callable

    from reconciler.controller.backup_schedule import BackupScheduler
    from reconciler.controller.daemon.shared import ApplierLike, DaemonConfig
    from reconciler.controller.daemon.shared_queue import ProjectQueue
    from reconciler.controller.workqueue import Claims, Records, WorkQueue
    from reconciler.platform.metrics import Metrics

log = logging.getLogger("reconciler.controller.daemon")  # one logger for all the daemon's parts


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


class Scheduler:
    """Runs the work queue's items (one branch each) and the backup scheduler's thread."""

    if TYPE_CHECKING:  # the daemon's state and parts this one uses (set in Daemon.__init__)
        _applying: dict[str, dict[str, str]]
        _commits: dict[str, str]
        _backup_thread: threading.Thread | None
        backups: BackupScheduler | None
        claims: Claims
        parked: Records
        clock: Callable[[], float]
        config: DaemonConfig
        _hooks: list[Callable[[str, Action, Work], None]]
        metrics: Metrics
        _notes_retry: tuple[bool, float, float]
        queue: WorkQueue | ProjectQueue
        _ready: threading.Event
        _shared: tuple[Any, float, PlanOutcome] | None
        _stop: threading.Event
        _wake: threading.Event

        def _applier(self) -> ApplierLike: ...

        def _project(self) -> Project: ...

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
            commit = action.commit or action.old_commit  # a destroy's: the commit the environment ran
            if commit:
                self._commits[action.env] = commit
            log.info("%s: %s %s (%s)", item.key, action.action, action.env, action.reason,
                     extra={"env": action.env, "branch": item.key, "action": str(action.action),
                            **({"commit": commit} if commit else {})})
            if work.hinted_at is not None:
                self.metrics.webhook_to_apply.observe(max(0.0, time.time() - work.hinted_at))
            for hook in self._hooks:
                hook(item.key, action, work)
        try:
            report = self._applier().apply(outcome)
        finally:
            for action in active:
                self._applying.pop(action.env, None)
                self._commits.pop(action.env, None)
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
        parked = [env.env for env in report.environments if env.result == "parked"]
        if parked:
            self.parked.add({item.key: {"reason": item.reason, "why": f"stopped mid-apply ({', '.join(parked)})",
                                        "drift": work.drift, "orphans": sorted(work.orphans),
                                        "since": time.time()}}, replace=True)
            return Result("parked")
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
            targets = project.source.ref_targets()  # one listing for both halves of the key
            key = (project.source.refs_digest(targets), observed_key(project, targets), None)
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
        if event == "finished" and getattr(details.get("result"), "status", "parked") != "parked":
            self.parked.remove({item.key})  # ran to an end (or to its own retry): no longer parked
        if event not in ("started", "finished"):
            self.metrics.queue_events.labels(event=event).inc()
        if event == "retry":
            log.warning("%s: transient failure (%s); retry %d in %.1fs", item.key,
                        (details.get("error") or {}).get("error"), item.attempt, details.get("delay", 0))
        elif event == "gave_up":
            log.error("%s: giving up after %d attempts: %s", item.key, item.attempt + 1, details.get("error"))
        self.metrics.queue_depth.set(self.queue.depth())
        self.metrics.queue_running.set(len(self.queue.running()))

