"""`odooops status`: per environment the commit, state, URL and last result, from observed state."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from reconciler.cli.common import handle_errors, state_dir_option
from reconciler.controller.host import HostSettings
from reconciler.controller.planning import Project
from reconciler.errors import OdooOpsError


def collect(project: Project) -> list[dict[str, Any]]:
    entries = project.store.entries()
    observed = project.observed()
    runtime: dict[str, Any] = {}
    try:
        from reconciler.executors.docker_runtime import DockerRuntime

        host = HostSettings.from_env(project.state_dir)
        runtime = {name: rt for name, rt in DockerRuntime(host.docker_host).observe().items()
                   if any(c.project == project.id for c in rt.containers)}
    except OdooOpsError:
        runtime = {}
    blocked: dict[str, dict[str, Any]] = {}
    from reconciler.sources.notes import iter_notes

    heads = {h.commit for h in project.heads()}
    for commit, note in iter_notes(project.source.repo):
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
        })
    return rows


@click.command("status")
@click.option("--repo", required=True, help="Local path or URL of the project.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@state_dir_option
@handle_errors
def status_command(repo: str, as_json: bool, state_dir: Path | None) -> None:
    """What runs: per environment the commit, state, runtime, URL and last result."""
    project = Project.open(repo, state_dir=state_dir)
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
