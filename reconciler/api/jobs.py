"""Long data operations run as jobs: the request that starts one is answered at once (202 + Location),
the job runs in a worker thread, reports its phases (reconciler.progress) and keeps its result or error.

Jobs are written to `<state>/jobs/<id>.json` at every change, so they outlive the server: a job that
was running when the server stopped is found `interrupted` on the next start (the live data is safe:
every data operation builds under a scratch name, and the sweep removes what it left).
"""

from __future__ import annotations

import json
import logging
import secrets as pysecrets
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from reconciler.api.errors import error_body, status_for
from reconciler.errors import OdooOpsError
from reconciler.platform.atomic import write_atomic
from reconciler.progress import reporting

log = logging.getLogger("odooops.jobs")
KEEP = 500  # finished jobs kept on disk (the newest)
STATES = ("running", "succeeded", "failed", "interrupted")


@dataclass
class Job:
    id: str
    operation: str  # the audited action, e.g. db.restore
    target: str
    actor: str
    state: str = "running"
    phase: str = "starting"
    phases: list[dict[str, Any]] = field(default_factory=list)  # {"name", "started_at", "seconds"}
    created_at: float = field(default_factory=time.time)
    finished_at: float | None = None
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None  # the error object the synchronous call would have answered
    status: int | None = None  # and its HTTP status
    request_id: str | None = None  # of the request that started it

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        end = self.finished_at or time.time()
        out["seconds"] = round(end - self.created_at, 3)
        return out


class JobRegistry:
    def __init__(self, root: Path, workers: int = 4) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._jobs: dict[str, Job] = {}  # the running ones; ended jobs are read from disk
        self._lock = threading.Lock()
        self._ended = threading.Condition(self._lock)
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="odooops-job")
        self._interrupt_leftovers()

    def submit(self, operation: str, target: str, actor: str, fn: Callable[[], dict[str, Any]],
               on_done: Callable[[Job], None] | None = None, request_id: str | None = None) -> Job:
        job = Job(id=pysecrets.token_hex(8), operation=operation, target=target, actor=actor, request_id=request_id)
        with self._lock:
            self._jobs[job.id] = job
        self._save(job)
        self._pool.submit(self._run, job, fn, on_done)
        return job

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            job = self._jobs.get(job_id)
        return job if job is not None else self._load(job_id)

    def list(self, limit: int = 50) -> list[Job]:
        # A job's file changes until it ends, so the newest files hold the newest jobs: read only those.
        newest = sorted(self.root.glob("*.json"), key=lambda p: p.stat().st_mtime, reverse=True)[:limit]
        found = {j.id: j for j in (self._load(p.stem) for p in newest) if j is not None}
        with self._lock:
            found.update(self._jobs)
        return sorted(found.values(), key=lambda j: j.created_at, reverse=True)[:limit]

    def shutdown(self, wait: bool = False) -> None:
        self._pool.shutdown(wait=wait, cancel_futures=True)

    def wait(self, job_id: str, timeout_s: float) -> Job | None:
        """The job once it is no longer running, or as it is when the timeout passes."""
        with self._lock:
            self._ended.wait_for(lambda: job_id not in self._jobs, timeout_s)
        return self.get(job_id)

    # ------------------------------------------------------------------ running

    def _run(self, job: Job, fn: Callable[[], dict[str, Any]], on_done: Callable[[Job], None] | None) -> None:
        def enter(name: str) -> None:
            now = time.time()
            if job.phases:
                job.phases[-1]["seconds"] = round(now - job.phases[-1]["started_at"], 3)
            job.phases.append({"name": name, "started_at": now, "seconds": None})
            job.phase = name
            self._save(job)

        end = Job(**{**asdict(job), "phases": job.phases})  # the outcome, published only when recorded
        try:
            with reporting(enter):
                result = fn()
            end.result, end.state = result, "succeeded"
        except OdooOpsError as exc:
            end.error = {**error_body(exc), "request_id": job.request_id}
            end.status, end.state = status_for(exc), "failed"
        except Exception:
            log.exception("job %s (%s of %s) failed", job.id, job.operation, job.target,
                          extra={"job": job.id, "env": job.target})
            end.error = {"error": "INTERNAL", "message": f"{job.operation} of {job.target} failed unexpectedly",
                         "remediation": f"the server log has the details (job {job.id}); run it again",
                         "docs": None, "request_id": job.request_id}
            end.status, end.state = 500, "failed"
        end.finished_at = time.time()
        if job.phases and job.phases[-1]["seconds"] is None:
            job.phases[-1]["seconds"] = round(end.finished_at - job.phases[-1]["started_at"], 3)
        end.phases, end.phase = job.phases, end.state
        if on_done is not None:  # audited before anyone can see that the job ended
            try:
                on_done(end)
            except Exception:
                log.exception("job %s: recording its outcome failed", job.id, extra={"job": job.id})
        self._save(end)
        log.info("job %s (%s of %s) %s", job.id, job.operation, job.target, end.state,
                 extra={"job": job.id, "env": job.target, "operation": job.operation, "state": end.state})
        with self._lock:  # finished jobs are read from disk from now on
            self._jobs.pop(job.id, None)
            self._ended.notify_all()
        self._prune()

    # ------------------------------------------------------------------ storage

    def _path(self, job_id: str) -> Path:
        return self.root / f"{job_id}.json"

    def _save(self, job: Job) -> None:
        # Not fsynced: a phase lost to a power cut is harmless (the job is then found interrupted).
        write_atomic(self._path(job.id), json.dumps(asdict(job)), durable=False)

    def _load(self, job_id: str) -> Job | None:
        if not all(c in "0123456789abcdef" for c in job_id) or len(job_id) != 16:
            return None
        try:
            return Job(**json.loads(self._path(job_id).read_text()))
        except (OSError, ValueError, TypeError):
            return None

    def _interrupt_leftovers(self) -> None:
        for path in self.root.glob("*.json"):
            job = self._load(path.stem)
            if job is not None and job.state == "running":
                job.state = job.phase = "interrupted"
                job.finished_at = time.time()
                job.status = 503
                job.error = {"error": "JOB_INTERRUPTED",
                             "message": f"the server stopped while {job.operation} of {job.target} was running "
                                        f"(in phase: {job.phases[-1]['name'] if job.phases else 'starting'})",
                             "remediation": "run the command again: the live data was not replaced, and the "
                                            "server's sweep removes the scratch copy it left", "docs": None}
                self._save(job)

    def _prune(self) -> None:
        files = sorted(self.root.glob("*.json"), key=lambda p: p.stat().st_mtime)
        for path in files[:-KEEP] if len(files) > KEEP else []:
            path.unlink(missing_ok=True)
