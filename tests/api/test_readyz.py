"""GET /readyz: ready after the first poll and when none of doctor's checks fails; cached against probe floods."""

from __future__ import annotations

import json
import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from reconciler.api.readiness import CachedChecks
from reconciler.core.hints import Hint
from reconciler.platform.host import HostSettings
from reconciler.platform.metrics import Metrics
from reconciler.service.doctor import FAIL, OK, WARN, CheckResult
from reconciler.service.doctor_project import Doctor
from tests.daemon.conftest import serve_api


class PolledDaemon:
    """The seam create_app takes: a daemon whose first poll did (or did not) succeed."""

    def __init__(self, directory: Path, ready: bool = True) -> None:
        self.metrics = Metrics()
        self.dir = directory
        self.ready = ready

    def hint(self, hint: Hint) -> None:
        pass

    def is_ready(self) -> bool:
        return self.ready

    def is_alive(self) -> bool:
        return True

    def status(self) -> dict[str, Any]:
        return {}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_failed_check_makes_readyz_503_with_every_check(tmp_path: Path, services_env: dict[str, str]) -> None:
    host = HostSettings.from_env(tmp_path / "state", {**services_env, "ODOOOPS_PG_PORT": str(closed_port())})
    checks = CachedChecks(Doctor(host).run)
    with serve_api(PolledDaemon(tmp_path), None, checks=checks) as base:
        resp = httpx.get(f"{base}/readyz", timeout=30)
    assert resp.status_code == 503
    body = resp.json()
    assert body["error"] == "HOST_CHECK_FAILED" and "postgres.reachable" in body["message"]
    by_id = {c["id"]: c for c in body["checks"]}
    assert by_id["postgres.reachable"]["status"] == FAIL and by_id["postgres.reachable"]["fix"]
    assert by_id["docker.reachable"]["status"] == OK
    assert set(by_id["docker.reachable"]) == {"id", "status", "detail", "fix", "duration_ms"}
    assert services_env["ODOOOPS_PG_PASSWORD"] not in resp.text  # unauthenticated: no secret in the body


def test_ready_when_nothing_failed_and_warnings_are_allowed(tmp_path: Path) -> None:
    results = [CheckResult("a", OK, "fine"), CheckResult("b", WARN, "meh", "do this")]
    with serve_api(PolledDaemon(tmp_path), None, checks=CachedChecks(lambda: results)) as base:
        resp = httpx.get(f"{base}/readyz")
    assert resp.status_code == 200
    assert resp.json() == {"status": "ready", "checks": [r.to_json() for r in results]}


def test_before_the_first_poll_no_check_runs(tmp_path: Path) -> None:
    checks = CachedChecks(lambda: [CheckResult("a", OK, "fine")])
    with serve_api(PolledDaemon(tmp_path, ready=False), None, checks=checks) as base:
        resp = httpx.get(f"{base}/readyz")
    assert resp.status_code == 503 and resp.json()["error"] == "NOT_READY"
    assert checks.runs == 0


def test_a_probe_flood_runs_the_checks_once_per_ttl(tmp_path: Path) -> None:
    clock = Clock()
    started = threading.Event()
    release = threading.Event()

    def slow_run() -> list[CheckResult]:
        started.set()
        release.wait(30)  # every probe below arrives while this run is in progress
        return [CheckResult("a", OK, "fine")]

    checks = CachedChecks(slow_run, ttl_s=5.0, clock=clock)
    with serve_api(PolledDaemon(tmp_path), None, checks=checks) as base, ThreadPoolExecutor(16) as pool:
        first = pool.submit(httpx.get, f"{base}/readyz", timeout=30)
        started.wait(30)
        flood = [pool.submit(httpx.get, f"{base}/readyz", timeout=30) for _ in range(15)]
        release.set()
        codes = {f.result().status_code for f in [first, *flood]}
        assert codes == {200} and checks.runs == 1
        clock.now += 4.9
        httpx.get(f"{base}/readyz")
        assert checks.runs == 1
        clock.now += 0.2
        httpx.get(f"{base}/readyz")
        assert checks.runs == 2
    assert json.dumps([r.to_json() for r in checks.get()])
