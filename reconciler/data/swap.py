"""Swap a restored scratch database and filestore in for an environment's live ones, undoing it on failure."""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reconciler.data.scratch import old_name
from reconciler.errors import OdooOpsError
from reconciler.executors.health import wait_healthy
from reconciler.executors.router import CaddyRouter
from reconciler.progress import phase as report_phase

if TYPE_CHECKING:
    from reconciler.data.context import DataContext
    from reconciler.executors.postgres import Postgres


def require_confirmation(ctx: DataContext, target_env: str, confirm: bool, command: str | None = None) -> None:
    """Replacing production's data needs an explicit flag; refused before anything is touched."""
    entry = ctx.entry(target_env)
    if str(entry.get("tier")) == "production" and not confirm:
        raise OdooOpsError(
            "RESTORE_NEEDS_CONFIRMATION", f"{target_env} is production: restoring replaces its live data",
            f"{command or f'odooops db restore {target_env} --backup ID'}  # --confirm says you mean it; "
            "the current database is kept until the restored one is healthy",
            {"env": target_env})


def _stop(ctx: DataContext, env: str) -> list[str]:
    """Stop (not remove) the long-running containers, so nothing writes while the data moves."""
    stopped = []
    for c in ctx.runtime.observe_env(ctx.key(env)).containers:
        if not c.oneshot and c.running:
            ctx.runtime.stop_container(c.id, 20)
            stopped.append(c.name)
    return stopped


def _start(ctx: DataContext, env: str, entry: dict[str, Any]) -> str:
    """Recreate the containers from the recorded spec and point the route at the new web port."""
    result = ctx.runtime.ensure(entry["container_spec"])
    upstream = result.observed.web_upstream
    if not upstream:
        raise OdooOpsError("RUNTIME_NO_PORT", f"the web container of {env} publishes no port after the restore",
                           f"odooops logs {env}")
    with CaddyRouter(ctx.host.caddy_admin, ctx.host.caddy_server) as router:
        router.set_route(ctx.key(env), _domains(entry), upstream, result.observed.websocket_upstream)
    return upstream


def _domains(entry: dict[str, Any]) -> list[str]:
    return list((entry.get("settings") or {}).get("domains") or [])


Undo = list[tuple[str, Callable[[], None]]]


def swap_databases(pg: Postgres, live: str, scratch: str, old: str, undo: Undo) -> None:
    """Live database -> `old`, `scratch` -> live name; each rename's inverse is appended to `undo`.

    What now carries the environment's name is secured for the environment's role (named like the
    environment) before anything starts on it, whatever the copy was made with."""
    pg.rename(live, old)
    undo.append(("database back", lambda: pg.rename(old, live)))
    pg.rename(scratch, live)
    undo.append(("new database aside", lambda: pg.rename(live, scratch)))
    pg.secure_database(live, live)


def swap_filestores(live_fs: Path, scratch_fs: Path, old_fs: Path, undo: Undo) -> None:
    """Same for the filestore: renames within one parent directory, atomic and never a copy."""
    if live_fs.exists():
        os.rename(live_fs, old_fs)
        undo.append(("filestore back", lambda: os.rename(old_fs, live_fs)))
    os.rename(scratch_fs, live_fs)
    undo.append(("new filestore aside", lambda: os.rename(live_fs, scratch_fs)))


def undo_all(undo: Undo) -> list[str]:
    """Run the inverses newest first; every one is tried, failures are named."""
    done = []
    for name, step in reversed(undo):
        try:
            step()
            done.append(name)
        except Exception as exc:  # keep undoing the rest: each step is independent
            done.append(f"{name} FAILED: {exc}")
    undo.clear()
    return done


def swap_in(ctx: DataContext, target_env: str, db: str, filestore_dir: Path, *, confirm_production: bool = False,
            keep_old: bool = False, health_timeout_s: float = 120.0) -> dict[str, Any]:
    """Live db -> `oo_old_*`, `db` -> env name, same for the filestore; restart; health; undo on any failure.

    The caller holds the environment's lock (restore.restore does). The old copy is dropped only after
    the environment passed /web/health on the restored data (kept with keep_old=True)."""
    require_confirmation(ctx, target_env, confirm_production)
    entry = ctx.entry(target_env)
    if not entry.get("container_spec"):
        raise OdooOpsError("ENV_NOT_DEPLOYED", f"{target_env} has no deployment to restart after the swap",
                           f"odooops apply --branch {entry.get('branch') or '<branch>'}")
    live_fs = ctx.host.filestore_dir(ctx.key(target_env))
    if Path(filestore_dir).parent != live_fs.parent or not ctx.pg.exists(db):
        raise OdooOpsError("RESTORE_SCRATCH_MISSING", f"scratch database {db} or filestore {filestore_dir} is not "
                           f"ready for {target_env}", "run the restore again: odooops db restore ...",
                           {"database": db, "filestore": str(filestore_dir)})
    old = old_name(db)
    old_fs = live_fs.with_name(old)
    phases: dict[str, float] = {}
    undo: Undo = []

    def phase(name: str, fn: Callable[[], Any]) -> Any:
        report_phase(f"swap: {name.replace('_', ' ')}")
        t = time.monotonic()
        try:
            return fn()
        finally:
            phases[name] = round(time.monotonic() - t, 3)

    def rename_dbs() -> None:
        swap_databases(ctx.pg, ctx.key(target_env), db, old, undo)

    def rename_dirs() -> None:
        swap_filestores(live_fs, Path(filestore_dir), old_fs, undo)

    stopped: list[str] = []
    try:
        stopped = phase("stop", lambda: _stop(ctx, target_env))
        phase("rename_database", rename_dbs)
        phase("rename_filestore", rename_dirs)
        upstream = phase("start", lambda: _start(ctx, target_env, entry))
        domains = _domains(entry)
        health = phase("health", lambda: wait_healthy(ctx.host.router_http, host_header=domains[0] if domains else None,
                                                      timeout_s=health_timeout_s))
        health.raise_if_unhealthy(target_env)
    except BaseException as exc:
        rolled_back = _undo(ctx, target_env, entry, undo)
        if isinstance(exc, OdooOpsError):
            exc.details.update(rolled_back=rolled_back, phases=phases)
            exc.remediation += "; the previous database and filestore are back in place"
        raise
    result: dict[str, Any] = {"env": target_env, "swapped": True, "database": ctx.key(target_env), "stopped": stopped,
                              "upstream": upstream, "health_s": round(health.elapsed_s, 3), "phases": phases}
    if keep_old:
        result.update(old_database=old, old_filestore=str(old_fs) if old_fs.exists() else None)
    else:
        phase("drop_old", lambda: _drop_old(ctx, old, old_fs))
        result.update(old_database=None, dropped_old=old)
    with contextlib.suppress(OdooOpsError):
        ctx.store.set_state(target_env, str(entry.get("state", "running")), restored_at=time.time())
    return result


def _drop_old(ctx: DataContext, old: str, old_fs: Path) -> None:
    ctx.pg.drop(old)
    shutil.rmtree(old_fs, ignore_errors=True)


def _undo(ctx: DataContext, env: str, entry: dict[str, Any], undo: Undo) -> list[str]:
    """Put the previous data back (newest step first) and restart the environment on it."""
    done = []
    with contextlib.suppress(Exception):
        _stop(ctx, env)
    had_steps = bool(undo)
    done += undo_all(undo)
    if had_steps:
        try:
            _start(ctx, env, entry)
            done.append("restarted")
        except Exception as exc:
            done.append(f"restart FAILED: {exc}")
    return done
