"""GET /readyz: ready after the first poll and when none of doctor's checks fails; cached against probe floods;
what the checks found only for local clients (the rule of /status and /metrics)."""

from __future__ import annotations

import ipaddress
import json
import socket
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from reconciler.api.app import create_app
from reconciler.api.audit import AuditKey, AuditLog
from reconciler.api.auth import KeyRing
from reconciler.api.readiness import CachedChecks
from reconciler.api.rest import ApiContext
from reconciler.controller.daemon import Daemon, DaemonConfig
from reconciler.core.hints import Hint
from reconciler.platform.host import HostSettings
from reconciler.platform.metrics import Metrics
from reconciler.service.doctor import FAIL, OK, WARN, CheckResult
from reconciler.service.doctor_project import Doctor
from reconciler.service.operations import Operations
from tests.api.conftest import serve_app
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


# What a client that is not local must not learn: where PostgreSQL is and which version, the storage driver.
FOUND = [CheckResult("postgres.reachable", FAIL, "PostgreSQL 16.4 at 10.20.30.40:5432 refused odooops",
                     "grant odooops CONNECT on 10.20.30.40", 41),
         CheckResult("docker.storage", OK, "storage driver overlay2 on /var/lib/docker", "", 7),
         CheckResult("webhook.secret", WARN, "no webhook secret is set", "pass --webhook-secret-file", 0)]
SUMMARY = [{"id": r.id, "status": r.status} for r in FOUND]


@contextmanager
def behind_trusted_proxy(tmp_path: Path, results: list[CheckResult]) -> Iterator[str]:
    """The app as `odooops serve` builds it with --trusted-proxy 127.0.0.1 (a proxy on this host): requests
    with X-Forwarded-For come from the client that header names."""
    daemon = Daemon(DaemonConfig(repo=str(tmp_path / "acme.git"), state_dir=tmp_path / "state"), None)
    api = ApiContext(keys=KeyRing.from_file(tmp_path / "api.key", create=True), ops=Operations(daemon, None),
                     audit=AuditLog(tmp_path / "audit.jsonl", AuditKey.from_file(tmp_path / "audit.key", create=True)),
                     trusted_proxies=(ipaddress.ip_network("127.0.0.1/32"),))
    try:
        app = create_app(PolledDaemon(tmp_path), None, api=api, checks=CachedChecks(lambda: results))
        with serve_app(app) as base:
            yield base
    finally:
        assert api.registry is not None
        api.registry.close()


def test_a_client_that_is_not_local_gets_only_each_checks_status(tmp_path: Path) -> None:
    with behind_trusted_proxy(tmp_path, FOUND) as base:
        remote = httpx.get(f"{base}/readyz", headers={"X-Forwarded-For": "198.51.100.9"})
        local = httpx.get(f"{base}/readyz")  # the proxy's host itself
        forwarded_local = httpx.get(f"{base}/readyz", headers={"X-Forwarded-For": "127.0.0.1"})
        token = httpx.get(f"{base}/readyz", headers={"X-Forwarded-For": "198.51.100.9",
                                                     "Authorization": "Bearer anything"})
    assert remote.status_code == local.status_code == forwarded_local.status_code == token.status_code == 503
    body = remote.json()
    assert body["error"] == "HOST_CHECK_FAILED" and "postgres.reachable" in body["message"]
    assert body["checks"] == SUMMARY and token.json()["checks"] == SUMMARY
    for secret in ("10.20.30.40", "16.4", "overlay2", "webhook secret", "--webhook-secret-file"):
        assert secret not in remote.text
    assert local.json()["checks"] == forwarded_local.json()["checks"] == [r.to_json() for r in FOUND]


def test_ready_answers_every_client_200_with_details_for_local_ones(tmp_path: Path) -> None:
    results = FOUND[1:]
    with behind_trusted_proxy(tmp_path, results) as base:
        remote = httpx.get(f"{base}/readyz", headers={"X-Forwarded-For": "198.51.100.9, 127.0.0.1"})
        local = httpx.get(f"{base}/readyz")
    assert remote.status_code == local.status_code == 200
    assert remote.json() == {"status": "ready", "checks": SUMMARY[1:]}
    assert local.json() == {"status": "ready", "checks": [r.to_json() for r in results]}


def test_behind_an_unconfigured_proxy_the_client_is_not_local(tmp_path: Path) -> None:
    """A proxy on this host the server was not told about: every client behind it would look local."""
    with serve_app(create_app(PolledDaemon(tmp_path), None, checks=CachedChecks(lambda: FOUND))) as base:
        resp = httpx.get(f"{base}/readyz", headers={"X-Forwarded-For": "127.0.0.1"})
    assert resp.status_code == 503 and resp.json()["checks"] == SUMMARY
