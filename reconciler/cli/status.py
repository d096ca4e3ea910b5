"""`odooops status`: per environment the commit, state, URL and last result, from observed state."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from reconciler.cli.common import handle_errors, project_option, state_dir_option
from reconciler.errors import OdooOpsError
from reconciler.platform.host import HostSettings

if TYPE_CHECKING:
    from reconciler.controller.planning import Project


def collect(project: Project) -> list[dict[str, Any]]:
    entries = project.store.entries()
    observed = project.observed()
    runtime: dict[str, Any] = {}
    try:
        # Imported when used (startup time): the Docker SDK loads only for a local status.
        from reconciler.executors.runtimes import open_runtime

        host = HostSettings.from_env(project.state_dir)
        # The runtime knows environments by key (docs/adr/0037): shown by their names.
        names = {project.key(n): n for n in set(entries) | set(observed)}
        runtime = {names.get(key, key): rt for key, rt in open_runtime(host).observe().items()
                   if any(c.project == project.id for c in rt.containers)}
    except OdooOpsError:
        runtime = {}
    blocked: dict[str, dict[str, Any]] = {}
    # Imported when used (startup time): pygit2 loads only for a local status.
    from reconciler.sources.notes import iter_notes

    heads = {h.commit for h in project.heads()}
    for commit, note in iter_notes(project.source.repo, ref=project.source.notes_ref):
        for name, e in (note.get("environments") or {}).items():
            if isinstance(e, dict) and e.get("state") == "blocked" and commit in heads:
                blocked[name] = e
    rows = []
    for name in sorted(set(entries) | set(observed) | set(runtime) | set(blocked)):
        if name in blocked and name not in entries and name not in observed:
            b = blocked[name]
            rows.append({"env": name, "tier": b.get("tier"), "branch": b.get("branch"), "commit": b.get("commit"),
                         "running_commit": None, "state": "blocked", "runtime": "absent", "url": None,
                         "last_result": b.get("reason"), "failed_step": None, "error": None, "tests": None,
                         "updated_at": None, "source": "notes", "remediation": b.get("remediation")})
            continue
        e = entries.get(name) or {}
        obs = observed.get(name)
        rt = runtime.get(name)
        web = rt.container("web") if rt else None
        last = [s for s in e.get("steps") or [] if s.get("result") == "failed"]
        rows.append({
            "env": name, "tier": e.get("tier") or (obs.tier if obs else None),
            "branch": e.get("branch") or (obs.branch if obs else None),
            "commit": e.get("commit") or (obs.commit if obs else None),
            "running_commit": web.commit if web else None,
            "state": e.get("state") or (obs.state if obs else "orphaned"),
            "runtime": (web.state if web else "absent"), "url": e.get("url"),
            "last_result": "failed" if e.get("state") == "failed" else ("ok" if e else None),
            "failed_step": last[-1]["name"] if last else None, "error": e.get("error"),
            "tests": e.get("tests"), "updated_at": e.get("updated_at"), "source": obs.source if obs else "runtime",
            "reason": failure_reason(e),
        })
    return rows


def failure_reason(entry: dict[str, Any]) -> str | None:
    """Why the last deploy failed (or its tests did), in one line: the error's message, which for
    a failed tests step names the failing test and its assertion."""
    error = entry.get("error") or {}
    tests = entry.get("tests") or {}
    if entry.get("state") == "failed" and error.get("message"):
        return str(error["message"])
    if tests.get("result") == "failed":
        return f"tests: {tests.get('reason') or 'failed'}"
    return None


@click.command("status")
@click.option("--repo", help="Local path or URL of the project: read its state here, offline. "
                             "Without it, ask the server (--server / ODOOOPS_SERVER).")
@click.option("--server", envvar="ODOOOPS_SERVER", metavar="URL",
              help="OdooOps server [env ODOOOPS_SERVER; else the config file].")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@project_option
@state_dir_option
@handle_errors
def status_command(repo: str | None, server: str | None, as_json: bool, project_name: str | None,
                   state_dir: Path | None) -> None:
    """What runs: per environment the commit, state, runtime, URL and last result.

    With --repo it reads this host's state, the notes and the Docker engine directly; otherwise the
    server answers, with its queue (running and waiting reconciles), last poll and backup schedule.
    """
    if repo is None:
        server_status(server, as_json, project_name)
        return
    # Imported when used (startup time): the planning pipeline loads only for a local status.
    from reconciler.controller.planning import Project

    project = Project.open(repo, state_dir=state_dir, project=project_name)
    rows = collect(project)
    if as_json:
        click.echo(json.dumps({"environments": rows}, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"OdooOps status: {repo}")
    for col in ("env", "tier", "branch", "commit", "state", "runtime", "url", "last result"):
        table.add_column(col)
    for r in rows:
        result = r["last_result"] or "-"
        if r["failed_step"]:
            result += f" ({r['failed_step']})"
        table.add_row(r["env"], r["tier"] or "-", r["branch"] or "-", (r["commit"] or "-")[:8], r["state"],
                      r["runtime"], r["url"] or "-", result)
    Console(width=200 if not sys.stdout.isatty() else None).print(table)
    for r in rows:  # why each failed environment failed, in full (the table keeps one line per env)
        if not r.get("reason"):
            continue
        if r["state"] != "failed":
            click.echo(f"{r['env']}: {r['reason']}")
            continue
        step = f" at {r['failed_step']}" if r["failed_step"] else ""
        fix = (r.get("error") or {}).get("remediation")
        click.echo(f"{r['env']}: failed{step}: {r['reason']}" + (f"\n  fix: {fix}" if fix else ""))


def server_status(server: str | None, as_json: bool, project: str | None = None) -> None:
    """GET /api/v1/status and /api/v1/environments: what runs and what the daemon is doing (with a project,
    at /api/v1/projects/PROJECT/...: the server of another project refuses)."""
    # Imported when used (startup time): the HTTP client loads only for a server's status.
    from reconciler.cli.client import Client, client_command, emit, table

    @client_command
    def show(server: str | None, as_json: bool) -> None:
        client = Client.from_config(server, project)
        daemon = client.get("/api/v1/status")
        envs = client.get("/api/v1/environments").get("environments") or []
        data = {"environments": envs, "daemon": daemon}

        def human() -> None:
            queue = daemon.get("queue") or {}
            applying = daemon.get("applying") or {}
            table([{**e, "commit_": (e.get("commit") or "-")[:12],
                    "step": (applying.get(e["name"]) or {}).get("step", "")} for e in envs],
                  [("name", "env"), ("tier", "tier"), ("branch", "branch"), ("commit_", "commit"),
                   ("state", "state"), ("step", "applying"), ("url", "url")], "(no environments)")
            last = daemon.get("last_poll_at")
            when = time.strftime("%H:%M:%S", time.localtime(last)) if last else "never"
            served = daemon.get("project")
            click.echo(f"\nproject {served if served else '(unnamed)'}, repository {daemon.get('repo', '?')}: "
                       f"last poll {when}; "
                       f"{len(queue.get('running') or [])} reconciling, {len(queue.get('pending') or [])} waiting; "
                       f"ready: {daemon.get('ready')}")
            for b in daemon.get("blocked") or []:
                click.echo(f"blocked {b.get('env')}: {b.get('reason')} (fix: {b.get('remediation')})")
            if daemon.get("last_error"):
                err = daemon["last_error"]
                click.echo(f"last poll error {err.get('error')}: {err.get('message')}")
        emit(data, as_json, human)

    show(server=server, as_json=as_json)
