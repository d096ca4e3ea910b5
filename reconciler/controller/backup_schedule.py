"""Scheduled backups and retention pruning of one project's environments, one tick at a time."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from contextlib import ExitStack, suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from reconciler.core.retention import plan_retention
from reconciler.core.schedule import due, next_run
from reconciler.data.backup import backup_ids, create_backup, id_time, prune, retention_for
from reconciler.data.context import DataContext
from reconciler.errors import OdooOpsError
from reconciler.executors.storage import store_for
from reconciler.platform.env_lock import env_lock
from reconciler.platform.host import HostSettings
from reconciler.platform.metrics import Metrics

if TYPE_CHECKING:
    from reconciler.controller.planning import Project

log = logging.getLogger(__name__)

PRUNE_EVERY = timedelta(hours=1)


def _iso(t: datetime | None) -> str | None:
    return t.isoformat(timespec="seconds") if t is not None else None


@dataclass
class EnvBackups:
    """What the scheduler remembers of one environment between ticks (in memory only)."""

    schedule: str | None = None
    looked_up: bool = False
    last_id: str | None = None
    # Scheduled slots up to this time are served; see _backup for why it is not the id's time.
    last_at: datetime | None = None
    last_prune_at: datetime | None = None
    failures: int = 0
    retry_at: datetime | None = None
    last_error: dict[str, Any] | None = None
    busy_at: datetime | None = None


class BackupScheduler:
    """Takes each running environment's scheduled backups and prunes what its retention drops."""

    def __init__(self, project_factory: Callable[[], Project], host: HostSettings,
                 clock: Callable[[], float], metrics: Metrics | None = None, *, lock_wait_s: float = 2.0,
                 retry_base: timedelta = timedelta(minutes=5), retry_cap: timedelta = timedelta(hours=1)) -> None:
        self.project_factory = project_factory
        self.host = host
        self.clock = clock
        self.metrics = metrics or Metrics()
        # An env held by an apply or a restore is retried next tick: a minutes-long wait here
        # would delay every other environment's backup.
        self.lock_wait_s = lock_wait_s
        self.retry_base, self.retry_cap = retry_base, retry_cap
        self.ticks = 0
        self.last_tick_at: datetime | None = None
        self._envs: dict[str, EnvBackups] = {}
        self._ctx: DataContext | None = None
        self._guard = threading.Lock()  # status() reads from API threads while a tick runs
        self._tick_lock = threading.Lock()  # a tick can last minutes: two must never overlap

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC)

    # ------------------------------------------------------------------ one tick

    def tick(self, now: datetime | None = None) -> list[dict[str, Any]]:
        """Back up every due environment, prune, and return what happened (one dict per event)."""
        now = now or self.now()
        with self._tick_lock:
            project = self.project_factory()
            entries = project.store.entries()
            events: list[dict[str, Any]] = []
            try:
                if self._ctx is None or self._ctx.store is not project.store:
                    self._ctx = DataContext.for_project(project, self.host)
            except Exception as exc:  # e.g. dockerd down: nothing can run; the next tick tries again
                log.warning("backup scheduler cannot start its tick: %s", exc, exc_info=exc)
                return [{"action": "error", "op": "tick", "error": getattr(exc, "code", type(exc).__name__)}]
            for env in sorted(entries):
                with self._guard:
                    st = self._envs.setdefault(env, EnvBackups())
                try:
                    events += self._env_tick(self._ctx, env, entries[env], st, now)
                except Exception as exc:  # one environment's failure never stops the others
                    events.append(self._failed(env, st, "backup" if st.looked_up else "lookup", exc, now))
            self._forget(set(entries))
            self.ticks += 1
            self.last_tick_at = now
            return events

    def _env_tick(self, ctx: DataContext, env: str, entry: dict[str, Any], st: EnvBackups,
                  now: datetime) -> list[dict[str, Any]]:
        st.schedule = (entry.get("settings") or {}).get("backup_schedule")
        if st.retry_at is not None and now < st.retry_at:
            return []  # backing off after a failure: a full store or a down server is not hammered
        if st.schedule and entry.get("state") == "running":
            if not st.looked_up:
                ids = backup_ids(store_for(ctx.host, ctx.secrets), ctx.key(env))
                st.last_id, st.last_at = (ids[0], id_time(ids[0])) if ids else (None, None)
                st.looked_up = True
                if ids:  # after a restart the gauge shows the store's newest backup, not nothing
                    self.metrics.backup_last_success.labels(env=env).set(id_time(ids[0]).timestamp())
            if due(st.schedule, st.last_at, now):
                return self._locked(env, ctx.key(env), st, now, "backup",
                                    lambda: self._backup(ctx, env, entry, st, now))
        if st.last_prune_at is None or now - st.last_prune_at >= PRUNE_EVERY:
            return self._locked(env, ctx.key(env), st, now, "prune", lambda: self._prune(ctx, env, entry, st, now))
        return []

    def _locked(self, env: str, key: str, st: EnvBackups, now: datetime, op: str,
                work: Callable[[], list[dict[str, Any]]]) -> list[dict[str, Any]]:
        """Run work under the environment's lock (by its key); a busy environment is skipped, not waited for."""
        with ExitStack() as held:
            try:
                held.enter_context(env_lock(self.host.state_dir, key, f"scheduled {op}", wait_s=self.lock_wait_s))
            except OdooOpsError as exc:
                if exc.code != "ENV_BUSY":
                    raise
                st.busy_at = now
                if op == "backup":
                    self.metrics.backups.labels(reason="scheduled", result="busy").inc()
                log.info("scheduled %s of %s skipped this tick: %s", op, env, exc.message)
                return [{"env": env, "action": "busy", "op": op, "holder": exc.details.get("holder")}]
            try:
                return work()
            except Exception as exc:
                return [self._failed(env, st, op, exc, now)]

    def _backup(self, ctx: DataContext, env: str, entry: dict[str, Any], st: EnvBackups,
                now: datetime) -> list[dict[str, Any]]:
        manifest = create_backup(ctx, env, reason="scheduled")
        self.metrics.backups.labels(reason="scheduled", result="ok").inc()
        self.metrics.backup_last_success.labels(env=env).set(manifest.created.timestamp())
        # The tick's time, not only the backup's: this backup serves every slot up to `now`, and
        # an injected clock (tests) or a long backup may put `now` after the manifest's time.
        st.last_id, st.last_at = manifest.id, max(now, manifest.created)
        st.failures, st.retry_at = 0, None
        log.info("scheduled backup %s of %s taken in %.1fs", manifest.id, env, manifest.seconds)
        events: list[dict[str, Any]] = [{"env": env, "action": "backup", "id": manifest.id}]
        try:
            events += self._prune(ctx, env, entry, st, now)
        except Exception as exc:  # the backup stands; the prune is retried after the backoff
            events.append(self._failed(env, st, "prune", exc, now))
        return events

    def _prune(self, ctx: DataContext, env: str, entry: dict[str, Any], st: EnvBackups,
               now: datetime) -> list[dict[str, Any]]:
        policy = retention_for(entry)
        ids = backup_ids(store_for(ctx.host, ctx.secrets), ctx.key(env))
        if ids and (st.last_id is None or id_time(ids[0]) > id_time(st.last_id)):
            # A manual backup (API, CLI) since the lookup: the schedule counts from it too. Times,
            # not ids: ids taken within one second are ordered by their random suffix.
            st.last_id, st.last_at = ids[0], max(st.last_at or id_time(ids[0]), id_time(ids[0]))
        # Judged on the ids' times first: prune() reads every manifest and sweeps the whole store
        # under its exclusive lock (blocking all backups), which is wasted when nothing expires.
        wanted = plan_retention({i: id_time(i) for i in ids}, now, policy).prune
        pruned = prune(ctx, env, now, policy) if wanted else []
        st.last_prune_at = now
        st.failures, st.retry_at = 0, None
        if not pruned:
            return []
        self.metrics.backups_pruned.inc(len(pruned))
        log.info("retention %s of %s pruned %d backups: %s", policy, env, len(pruned), ", ".join(pruned))
        return [{"env": env, "action": "prune", "pruned": pruned}]

    def _failed(self, env: str, st: EnvBackups, op: str, exc: Exception, now: datetime) -> dict[str, Any]:
        st.failures += 1
        delay = min(self.retry_base * 2 ** (st.failures - 1), self.retry_cap)
        st.retry_at = now + delay
        if isinstance(exc, OdooOpsError):
            error = exc.to_dict()
        else:
            error = {"error": "BACKUP_SCHEDULE_FAILED", "message": f"{type(exc).__name__}: {exc}"}
        st.last_error = {**error, "op": op, "at": _iso(now), "attempt": st.failures}
        if op == "backup":
            self.metrics.backups.labels(reason="scheduled", result="error").inc()
        # The traceback only helps for unexpected errors; an OdooOpsError already says what to fix.
        log.warning("scheduled %s of %s failed (attempt %d; next try after %s): %s", op, env, st.failures,
                    _iso(st.retry_at), exc, exc_info=None if isinstance(exc, OdooOpsError) else exc)
        return {"env": env, "action": "error", "op": op, "error": error["error"], "retry_at": _iso(st.retry_at)}

    def _forget(self, envs: set[str]) -> None:
        """Destroyed environments leave the status and the per-env gauge."""
        with self._guard:
            gone = [e for e in self._envs if e not in envs]
            for env in gone:
                del self._envs[env]
        for env in gone:
            with suppress(KeyError):
                self.metrics.backup_last_success.remove(env)

    # ------------------------------------------------------------------ status

    def status(self) -> dict[str, Any]:
        """Per environment: schedule, last backup, next run, last error (for the daemon's /status)."""
        now = self.now()
        with self._guard:
            envs = dict(self._envs)
        out: dict[str, Any] = {}
        for env, st in sorted(envs.items()):
            upcoming: datetime | None = None
            if st.schedule and st.looked_up:
                with suppress(OdooOpsError):
                    upcoming = next_run(st.schedule, st.last_at, now) if st.last_at is not None else now
            if upcoming is not None and st.retry_at is not None:
                upcoming = max(upcoming, st.retry_at)
            out[env] = {"schedule": st.schedule, "last_backup_id": st.last_id,
                        "last_backup_at": _iso(id_time(st.last_id)) if st.last_id else None,
                        "next_run": _iso(upcoming), "last_error": st.last_error, "failures": st.failures,
                        "retry_at": _iso(st.retry_at), "last_prune_at": _iso(st.last_prune_at),
                        "busy_at": _iso(st.busy_at)}
        return {"ticks": self.ticks, "last_tick_at": _iso(self.last_tick_at), "environments": out}
