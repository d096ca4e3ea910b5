"""REST routes for jobs: the long data operations started with `Prefer: respond-async`."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel

from reconciler.api.auth import Principal
from reconciler.api.errors import ApiError
from reconciler.api.rest import ctx_of, op

router = APIRouter(tags=["jobs"])
JobId = Path(..., pattern=r"^[0-9a-f]{16}$", description="The id from the 202 answer (its Location header).")


class JobModel(BaseModel):
    id: str
    operation: str
    target: str
    actor: str
    state: str  # running | succeeded | failed | interrupted
    phase: str
    phases: list[dict[str, Any]]
    created_at: float
    finished_at: float | None = None
    seconds: float
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    status: int | None = None
    request_id: str | None = None


class Jobs(BaseModel):
    jobs: list[JobModel]


@op(router, "GET", "/jobs", "listJobs", "Recent jobs (long data operations), newest first",
    errors=(), response_model=Jobs)
def list_jobs(request: Request, limit: int = Query(50, ge=1, le=500)) -> dict[str, Any]:
    jobs = ctx_of(request).jobs
    assert jobs is not None
    return {"jobs": [j.to_json() for j in jobs.list(limit)]}


def own_job(request: Request, who: Principal) -> bool:
    """Whoever started a job may follow it without env:read (a token made for one restore, say)."""
    jobs, job_id = ctx_of(request).jobs, request.path_params.get("job_id", "")
    job = jobs.get(job_id) if jobs is not None else None
    return job is not None and job.actor == who.subject


@op(router, "GET", "/jobs/{job_id}", "getJob",
    "A job: its phase while it runs, then its result or the error the operation answered (env:read, or the "
    "token's subject started it)", response_model=JobModel, allow=own_job)
def get_job(request: Request, job_id: str = JobId) -> dict[str, Any]:
    jobs = ctx_of(request).jobs
    assert jobs is not None
    job = jobs.get(job_id)
    if job is None:
        raise ApiError("JOB_NOT_FOUND", f"no job {job_id} on this server",
                       "GET /api/v1/jobs lists the recent ones (the newest 500 are kept)", {"job": job_id}, status=404)
    return job.to_json()
