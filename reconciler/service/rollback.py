"""Rollback: pin an environment to its last healthy commit (a Git ref), reconcile, and restore its data if needed.

The pin (refs/odooops/pins/<env>) is the desired-state change; the Applier then deploys the pinned
commit like any push. When the deploy being rolled back migrated data (its state entry holds the
`pre_deploy_backup` taken from the target commit), that backup is restored into a scratch database
while the old artifact is deployed, then swapped in (the live database is only replaced after the
restore is verified, by `swap_in`).

That restore discards everything written since the backup: the rollback states that window (the
backup's time, the records created and changed since, per table) and goes ahead only with `confirm`.
`code_only` instead runs the previous code on the database as it is, when the deploy left its modules
as the previous code expects; otherwise it is refused with the modules that changed.
"""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from reconciler.controller.apply import Applier
from reconciler.controller.planning import compute_plan
from reconciler.core.data_copy import describe_age
from reconciler.data.backup import database_facts, load_manifest
from reconciler.data.context import DataContext
from reconciler.data.restore import restore_to_scratch
from reconciler.data.swap import swap_in
from reconciler.errors import OdooOpsError
from reconciler.executors.sql import statement
from reconciler.executors.storage import store_for
from reconciler.platform.env_lock import env_lock
from reconciler.progress import deploy_progress
from reconciler.sources.notes import iter_notes, push_notes, read_note, write_env_entry
from reconciler.sources.objects import resolve_commit
from reconciler.sources.pins import delete_pin, pin_document, pin_ref, publish_ref, read_pins, write_pin

if TYPE_CHECKING:
    from reconciler.controller.planning import Project
    from reconciler.platform.host import HostSettings
    from reconciler.sources.git import GitSource

# The seed contract keeps the last ten versions selectable; older healthy commits are not offered.
MAX_CANDIDATES = 10
# Tables an update rewrites or that only log (ir_attachment holds people's files: it is a record table).
_TECHNICAL = re.compile(r"^(ir_(?!attachment$)|bus_|res_users_log$)")


def healthy_history(project: Project, env: str) -> list[dict[str, Any]]:
    """Commits that ran healthy on env, newest deploy first, from the notes and the state file.

    A commit a rollback already left is never offered again: it was healthy by its gates but bad."""
    rolled_back: set[str] = set()
    found: dict[str, dict[str, Any]] = {}
    for commit, note in iter_notes(project.source.repo, ref=project.source.notes_ref):
        entry = (note.get("environments") or {}).get(env)
        if not isinstance(entry, dict):
            continue
        left = (entry.get("rollback") or {}).get("from_commit")
        if left:
            rolled_back.add(str(left))
        if entry.get("state") == "running":
            found[commit] = {"commit": commit, "deployed_at": entry.get("deployed_at") or 0,
                             "updated_at": entry.get("updated_at") or 0, "branch": entry.get("branch")}
    state = project.store.entries().get(env) or {}
    running = state.get("running_commit")
    if running and running not in found and state.get("container_spec"):
        found[running] = {"commit": running, "deployed_at": state.get("deployed_at") or 0,
                          "updated_at": state.get("updated_at") or 0, "branch": state.get("branch")}
    history = sorted((c for c in found.values() if c["commit"] not in rolled_back),
                     key=lambda c: (float(c["deployed_at"] or 0), float(c["updated_at"] or 0)), reverse=True)
    return history[:MAX_CANDIDATES]


def _resolve_commit(source: GitSource, rev: str, env: str) -> str:
    commit = resolve_commit(source.repo, rev)
    if commit is None:
        raise OdooOpsError("ROLLBACK_COMMIT_NOT_FOUND", f"cannot roll {env} back to {rev}: no such commit",
                           f"odooops rollback {env}  # the last healthy version, or pass a commit from "
                           f"`odooops env deployments {env}`", {"env": env, "commit": rev})
    return commit


def choose_target(project: Project, env: str, current: str, to_commit: str | None) -> str:
    """The commit to run: `to_commit`, else the newest healthy one before the current deploy."""
    if to_commit:
        return _resolve_commit(project.source, to_commit, env)
    for candidate in healthy_history(project, env):
        if candidate["commit"] != current:
            return str(candidate["commit"])
    raise OdooOpsError(
        "ROLLBACK_NO_HEALTHY_VERSION",
        f"{env} has no healthy version before {current[:12]} in its status notes",
        f"name the commit to run: odooops rollback {env} --to <commit>", {"env": env, "current": current})


def _branch_head(project: Project, branch: str, env: str) -> str:
    for head in project.source.heads():
        if head.branch == branch:
            return head.commit
    raise OdooOpsError("ROLLBACK_BRANCH_GONE", f"the branch {branch} of {env} no longer exists, nothing to pin",
                       f"restore the branch (git push origin <commit>:refs/heads/{branch}) and retry",
                       {"env": env, "branch": branch})


def _publisher(project: Project, env: str) -> Callable[[str | None], None] | None:
    """Sets env's pin (or removes it: None) on the remote of a mirrored project; None for a local repo."""
    if not project.source.is_mirror:
        return None
    return lambda target: publish_ref(project.source.repo, project.location,
                                      pin_ref(env, prefix=project.source.pin_prefix), target, force=True)


def _restore_plan(entry: dict[str, Any], current: str, target: str) -> dict[str, Any] | None:
    """The pre-deploy backup to restore: taken from `target` right before the deploy of `current`."""
    backup = entry.get("pre_deploy_backup")
    if not isinstance(backup, dict):
        return None
    backup_id = backup.get("id") or backup.get("backup")
    if backup_id and backup.get("from_commit") == target and backup.get("to_commit") == current:
        return {**backup, "id": backup_id}
    return None


def _technical(table: str) -> bool:
    """Module data an update rewrites (views, fields, menus...) and logs: not records people made."""
    return bool(_TECHNICAL.match(table))


def backup_time(ctx: DataContext, env: str, restore: dict[str, Any]) -> float:
    """When the pre-deploy backup's dump started: its manifest's created_at (to the microsecond)."""
    return load_manifest(store_for(ctx.host, ctx.secrets), ctx.key(env), str(restore["id"])).created.timestamp()


def data_loss_window(ctx: DataContext, env: str, since: float, now: float | None = None) -> dict[str, Any]:
    """What restoring a backup taken at `since` discards: per table, the rows created and changed since
    (Odoo's create_date / write_date, in UTC; one read-only scan per table that has both). Deletions since
    are undone by the restore and cannot be counted this way."""
    now = time.time() if now is None else now
    stamp = datetime.fromtimestamp(since, UTC).replace(tzinfo=None)
    tables: dict[str, dict[str, int]] = {}
    with ctx.pg.connect(ctx.key(env)) as conn:
        conn.read_only = True
        names = [r[0] for r in conn.execute(
            "SELECT c.table_name FROM information_schema.columns c JOIN information_schema.tables t "
            "ON t.table_schema = c.table_schema AND t.table_name = c.table_name "
            "WHERE c.table_schema = 'public' AND t.table_type = 'BASE TABLE' "
            "AND c.column_name IN ('create_date', 'write_date') GROUP BY c.table_name HAVING count(*) = 2 "
            "ORDER BY 1").fetchall()]
        for name in names:
            created, changed = cast(tuple[int, int], conn.execute(statement(
                "SELECT count(*) FILTER (WHERE create_date > %(t)s), count(*) FILTER (WHERE write_date > %(t)s "
                "AND (create_date IS NULL OR create_date <= %(t)s)) FROM {} "
                "WHERE create_date > %(t)s OR write_date > %(t)s", name), {"t": stamp}
            ).fetchone())
            if created or changed:
                tables[name] = {"created": int(created), "changed": int(changed)}
    records = {k: v for k, v in tables.items() if not _technical(k)}
    technical = {k: v for k, v in tables.items() if _technical(k)}
    return {"since": round(since, 3), "since_utc": datetime.fromtimestamp(since, UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
            "age_s": round(now - since, 1), "created": sum(v["created"] for v in records.values()),
            "changed": sum(v["changed"] for v in records.values()), "tables": records,
            "technical_tables": technical, "deletions_counted": False}


def describe_window(window: dict[str, Any], backup_id: str) -> str:
    """One sentence: the backup's time, and the records it would discard."""
    tables = sorted(window["tables"].items(), key=lambda kv: -(kv[1]["created"] + kv[1]["changed"]))
    shown = ", ".join(f"{name} {v['created']} created/{v['changed']} changed" for name, v in tables[:5])
    more = f" and {len(tables) - 5} more tables" if len(tables) > 5 else ""
    what = (f"{window['created']} records created and {window['changed']} changed since then are discarded "
            f"({shown}{more})" if tables else "no record was created or changed since then")
    technical = len(window["technical_tables"])
    return (f"backup {backup_id} was taken at {window['since_utc']} ({describe_age(window['age_s'])} ago): {what}"
            + (f"; {technical} technical tables (module data, logs) changed too" if technical else "")
            + "; deletions since are undone and not counted")


def code_only_refusal(ctx: DataContext, env: str, restore: dict[str, Any], since: float) -> str | None:
    """Why the previous code cannot run on today's database (None: it can). Conservative: any module
    installed, removed, changed in version or updated in place since the pre-deploy backup refuses."""
    then = load_manifest(store_for(ctx.host, ctx.secrets), ctx.key(env), str(restore["id"])).modules
    now = database_facts(ctx, env)["modules"]
    reasons = []
    if sorted(set(now) - set(then)):
        reasons.append("installed " + ", ".join(sorted(set(now) - set(then))))
    if sorted(set(then) - set(now)):
        reasons.append("uninstalled " + ", ".join(sorted(set(then) - set(now))))
    versions = [f"{m} {then[m]} -> {now[m]}" for m in sorted(set(now) & set(then)) if then[m] != now[m]]
    if versions:
        reasons.append("updated " + ", ".join(versions))
    stamp = datetime.fromtimestamp(since, UTC).replace(tzinfo=None)
    with ctx.pg.connect(ctx.key(env)) as conn:
        touched = [r[0] for r in conn.execute(
            "SELECT name FROM ir_module_module WHERE write_date > %s ORDER BY name", (stamp,)).fetchall()]
    in_place = [m for m in touched if m in now and m in then and then[m] == now[m]]
    if in_place:
        reasons.append("updated in place (same version, new data or schema) " + ", ".join(in_place))
    return "; ".join(reasons) or None


def rollback(project: Project, host: HostSettings, env: str, *, to_commit: str | None = None,
             actor: str = "cli", apply: bool = True, confirm: bool = False,
             code_only: bool = False) -> dict[str, Any]:
    """Pin env to its last healthy commit (or `to_commit`), run it again, restore migrated data.

    Restoring the pre-deploy backup discards what was written since: without `confirm` that is refused
    (ROLLBACK_NEEDS_CONFIRMATION states the window). `code_only` keeps the database as it is, when the
    update left it as the previous code expects (no module installed or updated), else it is refused."""
    started = time.perf_counter()
    phases: dict[str, float] = {}
    if project.source.is_mirror:
        project.source.refresh_if_changed()
    entry = project.store.entries().get(env)
    if not entry:
        raise OdooOpsError("ENV_NOT_FOUND", f"environment {env} has never been deployed on this host",
                           "odooops status  # lists the environments this host runs", {"env": env})
    current = str(entry.get("commit"))
    branch = str(entry.get("branch"))
    target = choose_target(project, env, current, to_commit)
    if target == current and entry.get("state") == "running":
        raise OdooOpsError("ROLLBACK_TARGET_IS_CURRENT", f"{env} already runs {target[:12]}",
                           f"odooops rollback {env} --to <an older commit>", {"env": env, "commit": target})
    restore = _restore_plan(entry, current, target)
    window: dict[str, Any] | None = None
    if restore is not None:
        data_ctx = DataContext.for_project(project, host)
        since = backup_time(data_ctx, env, restore)
        refusal = code_only_refusal(data_ctx, env, restore, since)
        if code_only:
            if refusal is not None:
                raise OdooOpsError(
                    "ROLLBACK_CODE_ONLY_REFUSED", f"{env} cannot go back to {target[:12]}'s code on its current "
                    f"database: the deploy of {current[:12]} changed its modules ({refusal}), which the "
                    "previous code does not expect", f"odooops rollback {env} --confirm  # code and the pre-deploy "
                    f"backup {restore['id']}, discarding what was written since", {"env": env, "reason": refusal})
            restore = None  # the database stays as it is, with everything written since the deploy
        else:
            window = data_loss_window(data_ctx, env, since)
            if not confirm:
                said = describe_window(window, str(restore["id"]))
                alternative = ("" if refusal is None else
                               f"; --code-only is not possible: the deploy changed modules ({refusal})")
                raise OdooOpsError(
                    "ROLLBACK_NEEDS_CONFIRMATION", f"rolling {env} back to {target[:12]} restores its pre-deploy "
                    f"backup: {said}",
                    f"odooops rollback {env} --confirm  # accept that loss"
                    + (f"; or odooops rollback {env} --code-only  # previous code, data kept" if refusal is None
                       else alternative),
                    {"env": env, "backup": restore["id"], "window": window, "code_only_refusal": refusal})

    t = time.perf_counter()
    # Held to the end: the daemon's apply of this env (woken by the pin) waits, and never sees
    # the containers stopped by the swap as drift to repair.
    with env_lock(host.state_dir, project.key(env), f"rollback by {actor}"):
        head = _branch_head(project, branch, env)
        reason = f"rollback of {current[:12]} by {actor}"
        # Remote first: the mirror follows the remote's pins (the daemon's poll would drop a pin that
        # exists only here), so the local ref moves only after the remote took it.
        pin = write_pin(project.source.repo, env, target, head, reason=reason, actor=actor,
                        publish=_publisher(project, env), prefix=project.source.pin_prefix)
        pushed = True if project.source.is_mirror else None
        phases["pin"] = time.perf_counter() - t

        report: dict[str, Any] = {
            "env": env, "status": "pinned", "commit": target, "from_commit": current, "branch": branch,
            "branch_head": head, "actor": actor, "pin": pin_document(pin), "pin_pushed": pushed,
            "restored_backup": restore["id"] if restore else None, "data": None, "apply": None,
            "code_only": code_only, "data_kept": restore is None,
            "discarded": ({**window, "text": describe_window(window, str(restore["id"]))}
                          if window is not None and restore is not None else None),
        }
        scratch: tuple[str, str] | None = None
        ctx = None
        try:
            if restore is not None:
                ctx = DataContext.for_project(project, host)
                t = time.perf_counter()
                db, filestore = restore_to_scratch(ctx, env, restore["id"], env)
                scratch = (str(db), str(filestore))
                phases["restore"] = time.perf_counter() - t
            if apply:
                # The old artifact first: when a backup is restored, it is swapped in under the code
                # it was taken from, and swap_in's health check then proves that pair.
                t = time.perf_counter()
                report["apply"] = _apply(project, host, branch, env, target)
                phases["apply"] = time.perf_counter() - t
            if scratch is not None and ctx is not None:
                t = time.perf_counter()
                swapped = swap_in(ctx, env, scratch[0], Path(scratch[1]), confirm_production=True)
                scratch = None
                phases["swap"] = time.perf_counter() - t
                report["data"] = {"backup": restore, "swap": swapped}
        finally:
            if scratch is not None and ctx is not None:
                # A rollback that stopped half-way must not leave a restored copy behind.
                ctx.pg.drop(scratch[0])
                shutil.rmtree(scratch[1], ignore_errors=True)
        report["status"] = "rolled_back" if apply else "pinned"
        phases["total"] = time.perf_counter() - started
        report["phases"] = {k: round(v, 3) for k, v in phases.items()}
        report["seconds"] = report["phases"]["total"]
        report["note_written"] = _note(project, env, target, report)
        return report


def _apply(project: Project, host: HostSettings, branch: str, env: str, target: str) -> dict[str, Any]:
    """Reconcile the env's branch now (the pin makes its desired commit the target) with the real Applier."""
    outcome = compute_plan(project, branches=[branch], refresh=False)
    action = next((a for a in outcome.plan.actions if a.env == env), None)
    if action is None or action.commit != target:
        raise OdooOpsError(
            "ROLLBACK_NOT_PLANNED", f"the plan does not deploy {target[:12]} to {env}: "
                                    f"{action.reason if action else 'the environment is not in the plan'}",
            f"odooops plan --branch {branch}  # see why; odooops rollback {env} --clear removes the pin",
            {"env": env, "action": action.to_json() if action else None})
    result = Applier(project, host, deploy_progress).apply(outcome)
    mine = [e for e in result.environments if e.env == env]
    if mine and mine[0].result != "ok":
        err = mine[0].error or {}
        raise OdooOpsError(
            "ROLLBACK_APPLY_FAILED", f"deploying {target[:12]} to {env} failed: {err.get('message')}",
            f"{err.get('remediation') or 'see odooops status ' + env}; the pin stays "
            f"(odooops rollback {env} --clear to follow the branch again)",
            {"env": env, "apply": result.to_json()})
    return {"action": str(action.action), "reason": action.reason, "ok": result.ok,
            "seconds": round(result.seconds, 3), "notes_pushed": result.notes_pushed,
            "steps": mine[0].to_json()["steps"] if mine else []}


def _note(project: Project, env: str, commit: str, report: dict[str, Any]) -> bool:
    """Record the rollback (with its timings) in env's entry of the target commit's status note.

    The entry keeps its updated_at: this adds history, it is not a newer observation."""
    repo = project.source.repo
    note = read_note(repo, commit, ref=project.source.notes_ref) or {}
    entry = (note.get("environments") or {}).get(env)
    if not isinstance(entry, dict):
        return False
    summary = {k: report[k] for k in ("commit", "from_commit", "branch_head", "actor", "restored_backup",
                                      "phases", "status")}
    summary["at"] = round(time.time(), 3)
    write_env_entry(repo, commit, env, {**entry, "rollback": summary}, ref=project.source.notes_ref)
    if project.source.is_mirror:
        try:
            push_notes(repo, project.location, ref=project.source.notes_ref)
        except OdooOpsError:
            return True  # kept in the mirror; the next apply or daemon poll pushes it
    return True


def clear_pin(project: Project, env: str, actor: str) -> dict[str, Any]:
    """Remove env's rollback pin: the next reconcile follows the branch head again."""
    if project.source.is_mirror:
        project.source.refresh_if_changed()
    old = read_pins(project.source.repo, prefix=project.source.pin_prefix).get(env)
    publish = _publisher(project, env)
    if publish is not None and project.source.repo.references.get(
            pin_ref(env, prefix=project.source.pin_prefix)) is not None:
        publish(None)  # the remote first, as for a new pin (even a ref that is no valid pin)
    removed = delete_pin(project.source.repo, env, prefix=project.source.pin_prefix)
    pushed = True if removed and publish is not None else None
    return {"env": env, "cleared": removed, "pin": pin_document(old) if old else None, "pin_pushed": pushed,
            "actor": actor, "status": "cleared" if removed else "not_pinned"}
