"""`odooops jobs [ID] [--wait]`: the long data operations the server ran or runs (started by `db`,
`promote` and `rollback`, or by any API client with `Prefer: respond-async`)."""

from __future__ import annotations

import time
from typing import Any

import click

from reconciler.cli.client import Client, client_command, emit, show_fields, table


def row(job: dict[str, Any]) -> dict[str, Any]:
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(job.get("created_at") or 0))
    return {**job, "started": started, "took": f"{job.get('seconds') or 0:.1f} s",
            "now": job.get("phase") if job.get("state") == "running" else (job.get("error") or {}).get("error", "")}


@click.command("jobs")
@click.argument("job_id", required=False)
@click.option("--wait", is_flag=True, help="Follow the job until it ends (exit code as the operation's own).")
@click.option("--limit", type=click.IntRange(1, 500), default=20, show_default=True)
@client_command
def jobs_command(job_id: str | None, wait: bool, limit: int, server: str | None, as_json: bool) -> None:
    """Recent jobs, newest first; with JOB_ID one job, its phases and its result or error."""
    client = Client.from_config(server)
    if job_id is None:
        data = client.get("/api/v1/jobs", limit=limit)
        emit(data, as_json, lambda: table([row(j) for j in data.get("jobs") or []],
                                          [("id", "job"), ("operation", "operation"), ("target", "target"),
                                           ("actor", "by"), ("state", "state"), ("started", "started"),
                                           ("took", "took"), ("now", "phase / error")], "(no jobs)"))
        return
    job = client.get(f"/api/v1/jobs/{job_id}")
    if wait:
        client.follow(job)  # raises the operation's error (and its exit code) if it failed
        job = client.get(f"/api/v1/jobs/{job_id}")

    def human() -> None:
        show_fields(row(job), ["id", "operation", "target", "actor", "state", "started", "took", "request_id"])
        table([{**p, "took": f"{p.get('seconds') or 0:.1f} s"} for p in job.get("phases") or []],
              [("name", "phase"), ("took", "took")], "(no phases)")
        if job.get("error"):
            show_fields(job["error"], ["error", "message", "remediation"])

    emit(job, as_json, human)
