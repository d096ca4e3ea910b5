"""Long operations as jobs (`Prefer: respond-async`): 202 + Location at once, then the same result or
error object (and HTTP status) a synchronous call answers, audited when the job ends; jobs outlive
the server (a running one is found interrupted)."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

from reconciler.api.jobs import JobRegistry
from tests.api.conftest import ApiServer

ASYNC = {"Prefer": "respond-async"}


def _follow(api: ApiServer, location: str, deadline_s: float = 120) -> dict[str, Any]:
    end = time.monotonic() + deadline_s
    while True:
        job = api.request("GET", location, role="tester").json()
        if job["state"] != "running" or time.monotonic() > end:
            return job  # type: ignore[no-any-return]
        time.sleep(0.05)


def test_a_failing_job_answers_what_the_synchronous_call_answers(api: ApiServer) -> None:
    env = api.add_env(tier="staging")
    try:
        path = f"/api/v1/environments/{env}/backups/2020-01-01-00-00-00-dead/verify"
        sync = api.request("POST", path, role="admin")
        started = api.request("POST", path, role="admin", headers=ASYNC)
        assert started.status_code == 202 and started.headers["preference-applied"] == "respond-async"
        job = started.json()
        assert started.headers["location"] == f"/api/v1/jobs/{job['id']}"
        assert (job["operation"], job["target"], job["actor"]) == ("db.verify", env, "tester@example.com")
        done = _follow(api, started.headers["location"])
        assert done["state"] == "failed" and done["result"] is None
        assert done["status"] == sync.status_code and sync.status_code >= 400
        assert done["error"]["error"] == sync.json()["error"] and done["error"]["remediation"]
        assert done["error"]["request_id"] == started.headers["x-request-id"]
        listed = api.request("GET", "/api/v1/jobs", role="tester").json()["jobs"]
        assert listed[0]["id"] == job["id"]
        # audited when the job ended, like the synchronous call
        entries = api.request("GET", "/api/v1/audit", role="admin").json()["events"]
        results = [e["result"] for e in entries if e["action"] == "db.verify" and e["target"] == env]
        assert len(results) == 2 and results[0] == results[1] and results[0].endswith(":" + sync.json()["error"])
    finally:
        api.remove_env(env)


def test_who_started_a_job_may_follow_it_without_env_read(api: ApiServer) -> None:
    env = api.add_env(tier="staging")
    try:
        path = f"/api/v1/environments/{env}/backups/2020-01-01-00-00-00-dead/verify"
        mine = api.token(["db:backup"], subject="ci-restore@example.com")
        started = api.request("POST", path, token=mine, headers=ASYNC)
        assert started.status_code == 202
        location = started.headers["location"]
        assert api.request("GET", location, token=mine).status_code == 200
        other = api.token(["db:backup"], subject="someone-else@example.com")
        refused = api.request("GET", location, token=other)
        assert refused.status_code == 403 and refused.json()["error"] == "SCOPE_REQUIRED"
        assert api.request("GET", "/api/v1/jobs", token=mine).status_code == 403  # the list stays env:read
    finally:
        api.remove_env(env)


def test_unknown_and_malformed_job_ids(api: ApiServer) -> None:
    missing = api.request("GET", "/api/v1/jobs/0123456789abcdef", role="tester")
    assert missing.status_code == 404 and missing.json()["error"] == "JOB_NOT_FOUND"
    bad = api.request("GET", "/api/v1/jobs/..%2F..%2Fstate", role="tester")
    assert bad.status_code in (400, 404)
    assert api.request("GET", "/api/v1/jobs/0123456789abcdef").status_code == 404  # admin too


def test_jobs_outlive_the_server_and_a_running_one_is_interrupted(tmp_path: Path) -> None:
    first = JobRegistry(tmp_path / "jobs")
    ok = first.submit("db.backup", "develop", "me", lambda: {"id": "b1"})
    assert first.wait(ok.id, 10).state == "succeeded"  # type: ignore[union-attr]
    release = threading.Event()
    stuck = first.submit("db.restore", "develop", "me", lambda: {"released": release.wait(60)})
    # the process dies here (the file says running); the next server start finds it
    assert json.loads((tmp_path / "jobs" / f"{stuck.id}.json").read_text())["state"] == "running"
    second = JobRegistry(tmp_path / "jobs")
    again = second.get(stuck.id)
    assert again is not None and again.state == "interrupted" and again.status == 503
    assert again.error and again.error["error"] == "JOB_INTERRUPTED"
    assert "run the command again" in again.error["remediation"]
    assert second.get(ok.id).result == {"id": "b1"}  # type: ignore[union-attr]
    assert [j.id for j in second.list()] == [stuck.id, ok.id]
    assert second.get("../../etc") is None
    release.set()
    first.shutdown(wait=True)
