"""Periodic repairs: orphans, runtime and route drift, unpushed notes, scratch data, database access."""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING, Any

from reconciler.controller.planning import Project, compute_plan
from reconciler.controller.workqueue import Work
from reconciler.core.drift import route_drift, web_drift
from reconciler.core.model import ActionKind
from reconciler.data import access_sweep, scratch
from reconciler.errors import OdooOpsError
from reconciler.executors.postgres import Postgres
from reconciler.executors.router import CaddyRouter
from reconciler.executors.runtime import ObservedRuntime
from reconciler.executors.runtimes import open_runtime
from reconciler.executors.sql import database_errors
from reconciler.platform.env_lock import is_busy
from reconciler.sources.notes import push_notes

if TYPE_CHECKING:
    import threading
    from collections.abc import Callable

    from reconciler.controller.daemon.shared import DaemonConfig
    from reconciler.controller.daemon.shared_queue import ProjectQueue
    from reconciler.controller.workqueue import Claims, WorkQueue
    from reconciler.platform.host import HostSettings
    from reconciler.platform.metrics import Metrics

log = logging.getLogger("reconciler.controller.daemon")  # one logger for all the daemon's parts


class Sweeper:
    """Finds what drifted from the plan or was left behind, and repairs it or queues the repair."""

    if TYPE_CHECKING:  # the daemon's state and parts this one uses (set in Daemon.__init__)
        claims: Claims
        clock: Callable[[], float]
        config: DaemonConfig
        host: HostSettings | None
        _local: threading.local
        metrics: Metrics
        queue: WorkQueue | ProjectQueue
        _status: dict[str, Any]

        def _project(self) -> Project: ...

    def _runtime(self) -> Any:
        if self.host is None:
            return None

        runtime = getattr(self._local, "runtime", None)
        if runtime is None:
            runtime = self._local.runtime = open_runtime(self.host)
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
        mine = {project.key(e) for e in set(self.claims.all()) | set(project.observed())}
        removed = []
        for env, obs in runtime.observe().items():
            for c in obs.containers:
                if env in mine and c.oneshot and c.project in (None, project.id):
                    with contextlib.suppress(Exception):
                        runtime.force_remove(c.id)
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
        claims = self.claims.all()
        # The runtime, the router and the locks know environments by key (docs/adr/0037); only this project's
        # are looked at, or every other project's environments would look like orphans here.
        names = {project.key(e): e for e in desired | set(observed) | set(claims)}
        labelled = {names.get(key, key): rt for key, rt in (runtime.observe() if runtime is not None else {}).items()
                    if _is_ours(project, rt)}
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
            if self.host is not None and is_busy(self.host.state_dir, project.key(name)):
                continue  # a restore or rollback stopped its containers on purpose
            rt = labelled.get(name)
            web = rt.container("web") if rt is not None else None
            route = routes.get(project.key(name)) if routes is not None else None
            what = web_drift(web)
            if what is not None:
                why = f"its web container {what}"
            elif routes is not None and route_drift(route, rt.web_upstream, rt.websocket_upstream):  # type: ignore[union-attr]  # web => rt
                why = "its route is missing or points elsewhere (Caddy or dockerd restarted?)"
            else:
                continue
            drifted.append(name)
            log.warning("%s: %s; repairing", name, why)
            self.queue.submit(obs.branch, "runtime drift", Work(drift=True))
        if project.source.is_mirror and project.source.notes_ahead_of(project.source.remote_refs()):
            try:  # retries are counted from push_notes' log records (NotesRetryCounter)
                push_notes(project.source.repo, self.config.repo, ref=project.source.notes_ref)
            except OdooOpsError as exc:
                log.warning("notes still not pushed: %s", exc.message)
        found = {"claimed": claimed, "unclaimed": unclaimed, "drifted": drifted}
        self._status = {**self._status, "orphans": found}
        if self.host is not None:
            found["scratch"] = self.sweep_scratch(project)
            found["access"] = self.sweep_access(project)
        return found

    def sweep_access(self, project: Project) -> list[str]:
        """Databases of this project's environments (and the platform's oo_* copies) that roles other than
        their own could reach: repaired (data.access_sweep); returns their names."""
        assert self.host is not None
        try:
            with database_errors():
                report = access_sweep.sweep(Postgres.from_host(self.host),
                                            {project.key(e) for e in project.store.entries()})
        except OdooOpsError as exc:
            log.warning("database access sweep skipped: %s", getattr(exc, "message", exc))
            return []
        for db, problems in report.repaired.items():
            log.warning("database %s was reachable beyond its own role (%s): repaired", db, "; ".join(problems))
        for db, why in report.failed.items():
            log.error("database %s is reachable beyond its own role and could not be repaired: %s", db, why)
        self._status = {**self._status, "access": report.to_json()}
        return sorted(report.repaired)

    def sweep_scratch(self, project: Project) -> list[str]:
        """Scratch databases and filestores that a killed clone, restore or backup check of this project's
        environments left (data.scratch)."""
        assert self.host is not None
        try:
            with database_errors():
                report = scratch.sweep(Postgres.from_host(self.host), self.host,
                                       envs={project.key(e) for e in project.store.entries()})
        except (OdooOpsError, OSError) as exc:
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


def _is_ours(project: Project, env: ObservedRuntime) -> bool:
    """Whether a labelled environment is this project's: its containers carry the project's id; containers
    without one are the legacy project's (made before the label existed)."""
    ids = {c.project for c in env.containers}
    return project.id in ids or (project.name is None and ids <= {None})
