"""`odooops doctor`'s checks against the real services, and against broken ones: a closed PostgreSQL port, an
unwritable backup store, a remote that does not exist, a service that accepts and never answers."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from reconciler.platform.host import HostSettings
from reconciler.service.doctor import FAIL, OK, SKIPPED, WARN, CheckResult
from reconciler.service.doctor_project import Doctor, ProjectTarget, plan_needs
from tests.daemon.gitserve import GIT_ENV, free_port, git_daemon, wait_port
from tests.example_repo import build_example, commit_file, git

STATUSES = {OK, WARN, FAIL, SKIPPED}


def by_id(results: list[CheckResult]) -> dict[str, CheckResult]:
    assert all(r.status in STATUSES for r in results)
    # Every check that is not ok says what to do (a skip names the check that shows why instead).
    assert all(r.fix for r in results if r.status in (WARN, FAIL)), [r for r in results if not r.fix]
    return {r.id: r for r in results}


def host_for(state: Path, services_env: dict[str, str], **overrides: str) -> HostSettings:
    return HostSettings.from_env(state, {**services_env, **overrides})


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def silent_server() -> Iterator[int]:
    """A loopback TCP server that accepts every connection and never sends a byte (a hung service)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                return
            held.append(conn)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield int(server.getsockname()[1])
    finally:
        stop.set()
        server.close()
        for conn in held:
            conn.close()


def project(location: str, state: Path, secret: Path | None = None) -> ProjectTarget:
    from reconciler.controller.planning import Project, compute_plan

    return ProjectTarget(location, lambda: compute_plan(Project.open(location, state_dir=state)), secret)


@pytest.fixture
def example(tmp_path: Path) -> Path:
    bare = tmp_path / "srv" / "acme.git"
    build_example(bare, bare=True, oca_dest=tmp_path / "srv" / "oca-web.git")
    return bare


def test_the_embedded_host_answers_every_service(tmp_path: Path, services_env: dict[str, str]) -> None:
    results = by_id(Doctor(host_for(tmp_path / "state", services_env)).run())
    for check in ("postgres.reachable", "postgres.version", "postgres.rights", "postgres.clock", "docker.reachable",
                  "docker.storage_driver", "disk.state_dir", "router.admin", "router.http", "terraform.core",
                  "backup.store"):
        assert results[check].status == OK, results[check]
    assert "PostgreSQL 1" in results["postgres.version"].detail
    assert "API" in results["docker.reachable"].detail
    assert results["backup.store"].detail.startswith(str(tmp_path / "state" / "backups"))
    # Nothing was left behind by the store's probe.
    assert not [p for p in (tmp_path / "state" / "backups").rglob("*") if p.is_file()]
    # Without a project the plan's needs are not guessed.
    assert results["host.memory"].status == SKIPPED and results["backup.disk"].status == SKIPPED
    assert "--repo" in results["postgres.max_connections"].detail


def test_a_closed_postgres_port_fails_with_the_fix(tmp_path: Path, services_env: dict[str, str]) -> None:
    port = closed_port()
    results = by_id(Doctor(host_for(tmp_path, services_env, ODOOOPS_PG_PORT=str(port))).run())
    reachable = results["postgres.reachable"]
    assert reachable.status == FAIL and f":{port}" in reachable.detail
    assert f"-p {port}" in reachable.fix and "ODOOOPS_PG_PORT" in reachable.fix
    for dependent in ("postgres.version", "postgres.rights", "postgres.max_connections", "postgres.clock"):
        assert results[dependent].status == SKIPPED and "postgres.reachable" in results[dependent].detail
    assert results["docker.reachable"].status == OK  # one broken service does not hide the others
    assert services_env["ODOOOPS_PG_PASSWORD"] not in json.dumps([r.to_json() for r in results.values()])


@pytest.mark.parametrize("shape", ["under a regular file", "is a regular file"])
def test_an_unwritable_backup_store_fails(tmp_path: Path, services_env: dict[str, str], shape: str) -> None:
    # A path under (or at) a regular file refuses writes even to root, where a chmod would not.
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    store = blocker / "backups" if shape == "under a regular file" else blocker
    host = host_for(tmp_path / "state", services_env, ODOOOPS_BACKUP_STORE=json.dumps({"local": str(store)}))
    check = by_id(Doctor(host).run())["backup.store"]
    assert check.status == FAIL and str(store) in check.detail
    assert blocker.read_text() == "x"


def test_a_remote_that_does_not_exist(tmp_path: Path, services_env: dict[str, str]) -> None:
    (tmp_path / "srv").mkdir()
    with git_daemon(tmp_path / "srv") as url:
        location = f"{url}/missing.git"
        results = by_id(Doctor(host_for(tmp_path / "state", services_env),
                               project(location, tmp_path / "state")).run())
    assert results["project.remote"].status == FAIL and "missing.git" in results["project.remote"].detail
    assert "git ls-remote" in results["project.remote"].fix
    assert results["project.notes_push"].status == FAIL
    assert results["project.config"].status == FAIL  # the plan cannot read the remote either
    assert results["host.memory"].status == SKIPPED and "project.config" in results["host.memory"].detail


def test_a_local_path_that_is_no_repository(tmp_path: Path, services_env: dict[str, str]) -> None:
    (tmp_path / "empty").mkdir()
    results = by_id(Doctor(host_for(tmp_path / "state", services_env),
                           project(str(tmp_path / "empty"), tmp_path / "state")).run())
    assert results["project.remote"].status == FAIL and results["project.notes_push"].status == FAIL


def test_a_project_over_git_daemon(tmp_path: Path, services_env: dict[str, str], example: Path) -> None:
    state = tmp_path / "state"
    with git_daemon(example.parent) as url:
        location = f"{url}/acme.git"
        results = by_id(Doctor(host_for(state, services_env), project(location, state)).run())
    assert results["project.remote"].status == OK
    notes = results["project.notes_push"]
    assert notes.status == OK and "push connection" in notes.detail and "nothing was pushed" in notes.detail
    assert results["project.config"].status == OK
    # A remote on the network and no secret: serve would refuse webhooks.
    assert results["project.webhook_secret"].status == WARN
    assert "--webhook-secret-file" in results["project.webhook_secret"].fix
    for check in ("postgres.max_connections", "host.memory"):
        assert results[check].status in (OK, WARN, FAIL) and "environments" in results[check].detail
    assert "db_maxconn 64" in results["postgres.max_connections"].detail
    assert results["backup.disk"].status in (OK, WARN, FAIL)


def test_a_server_that_refuses_pushes(tmp_path: Path, services_env: dict[str, str], example: Path) -> None:
    port = free_port()
    # git daemon without --enable=receive-pack: fetches work, pushes are refused.
    proc = subprocess.Popen(["git", "daemon", "--export-all", "--reuseaddr", "--informative-errors",
                             f"--base-path={example.parent}", "--listen=127.0.0.1", f"--port={port}",
                             str(example.parent)], env=GIT_ENV, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        location = f"git://127.0.0.1:{port}/acme.git"
        wait_port(port, 10, "git daemon")
        results = by_id(Doctor(host_for(tmp_path / "state", services_env), project(location, tmp_path / "s")).run())
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert results["project.remote"].status == OK
    assert results["project.notes_push"].status == FAIL


def test_a_hung_service_is_reported_and_does_not_hang_doctor(tmp_path: Path, services_env: dict[str, str]) -> None:
    with silent_server() as port:
        host = host_for(tmp_path / "state", services_env, ODOOOPS_PG_PORT=str(port),
                        ODOOOPS_CADDY_ADMIN=f"http://127.0.0.1:{port}")
        results = by_id(Doctor(host, timeout_s=1.0).run())
    for check in ("postgres.reachable", "router.admin"):
        assert results[check].status == FAIL, results[check]
        assert results[check].detail.startswith("no answer within 1 s"), results[check]
    assert f"-p {port}" in results["postgres.reachable"].fix
    assert results["docker.reachable"].status == OK


def test_a_check_still_hung_from_the_previous_run_is_not_started_again(
        tmp_path: Path, services_env: dict[str, str]) -> None:
    # The connection attempt outlives doctor's 1 s deadline (libpq gives up after 3 s), so the second run
    # starts while the first run's attempt still waits.
    with silent_server() as port:
        doctor = Doctor(host_for(tmp_path / "state", services_env, ODOOOPS_PG_PORT=str(port)), timeout_s=1.0)
        first = by_id(doctor.run())["postgres.reachable"]
        second = by_id(doctor.run())["postgres.reachable"]
    assert first.status == second.status == FAIL
    assert first.detail.startswith("no answer within 1 s") and "since an earlier run" not in first.detail
    assert second.detail.startswith("no answer within 1 s") and "since an earlier run" in second.detail


def test_an_invalid_odooops_yaml_fails_the_config_check(tmp_path: Path, services_env: dict[str, str],
                                                        example: Path) -> None:
    work = tmp_path / "work"
    git(tmp_path, "clone", "-q", str(example), str(work))
    commit_file(work, "feature/broken", ".odooops.yaml", "workers: [\n", "broken config")
    results = by_id(Doctor(host_for(tmp_path / "state", services_env),
                           project(str(work), tmp_path / "state")).run())
    config = results["project.config"]
    assert config.status == FAIL and ".odooops.yaml:" in config.detail and "feature/broken" in config.detail


def test_webhook_secret_file_states(tmp_path: Path, services_env: dict[str, str]) -> None:
    secret = tmp_path / "webhook.secret"
    location = "git://127.0.0.1:9/none.git"

    def check() -> CheckResult:
        host = host_for(tmp_path / "state", services_env)
        return by_id(Doctor(host, project(location, tmp_path / "state", secret), 2.0).run())["project.webhook_secret"]

    assert check().status == FAIL  # missing
    secret.write_text("\n")
    assert check().status == FAIL  # empty: every webhook refused
    secret.write_text("s3cret-value\n")
    os.chmod(secret, 0o644)
    shared = check()
    assert shared.status == WARN and f"chmod 600 {secret}" == shared.fix
    os.chmod(secret, 0o600)
    fine = check()
    assert fine.status == OK and "s3cret-value" not in fine.detail


def test_plan_needs_read_the_rendered_specs(tmp_path: Path, example: Path) -> None:
    from reconciler.controller.planning import Project, compute_plan

    outcome = compute_plan(Project.open(str(example), state_dir=tmp_path / "state"))
    needs = plan_needs(outcome)
    expected_processes = 0
    expected_memory = 0
    for spec in outcome.plan.environments:
        s = spec.settings
        web = 1 if s["workers"] == 0 else 2 + s["workers"] + (0 if s["separate_cron"] else s["cron_workers"])
        expected_processes += web + (1 if s["separate_cron"] else 0)
        expected_memory += s["memory_mib"] * 2**20 + (min(1024, s["memory_mib"] // 2) * 2**20
                                                       if s["separate_cron"] else 0)
    assert needs.environments == len(outcome.plan.environments) > 0
    assert needs.processes == expected_processes and needs.memory_bytes == expected_memory
    assert needs.connections_worst == 64 * expected_processes >= needs.connections


def test_connections_and_memory_against_what_a_plan_needs(tmp_path: Path, services_env: dict[str, str]) -> None:
    from reconciler.service.doctor import HostProbe, Once, PlanNeeds, host_checks, run_checks

    # More connections than any PostgreSQL here allows, and more memory than any host has.
    needs = PlanNeeds(environments=3, processes=500, connections_worst=32000, connections=4000,
                      memory_bytes=2**60, db_maxconn=64)
    probe = HostProbe(host_for(tmp_path / "state", services_env), 5.0, Once(lambda: needs, "project.config"))
    results = by_id(run_checks(host_checks(probe), 5.0))
    connections = results["postgres.max_connections"]
    assert connections.status == FAIL and "capped by each database role's connection limit at 4000" in \
        connections.detail
    wanted = re.search(r"ALTER SYSTEM SET max_connections = (\d+)", connections.fix)
    assert wanted is not None and int(wanted.group(1)) > 4000
    assert results["host.memory"].status == WARN and "memory" in results["host.memory"].fix
    modest = PlanNeeds(1, 2, 128, 20, 2**20, 64)
    probe = HostProbe(host_for(tmp_path / "state", services_env), 5.0, Once(lambda: modest, "project.config"))
    results = by_id(run_checks(host_checks(probe), 5.0))
    assert results["postgres.max_connections"].status == OK and results["host.memory"].status == OK


def test_retention_disk_estimate_from_the_newest_backup(tmp_path: Path, services_env: dict[str, str],
                                                        example: Path) -> None:
    from reconciler.data.backup import SCHEMA, manifest_key
    from reconciler.executors.storage import LocalStore

    store_dir = tmp_path / "store"
    state = tmp_path / "state"
    target = project(str(example), state)
    production = next(s for s in target.plan().plan.environments if s.settings.get("backup_schedule"))
    # A backup from before encryption (plain JSON manifest) of an impossible size: no disk holds the estimate.
    manifest = {"schema": SCHEMA, "id": "2026-02-12-03-00-00-ab12", "env": production.name, "tier": "production",
                "commit": None, "created_at": "2026-02-12T03:00:00+00:00", "reason": "scheduled",
                "odoo_version": "19.0", "base_version": "19.0", "image": "odoo:19.0", "modules": {},
                "database_uuid": None, "dump": {}, "files": {}, "seconds": 1.0,
                "sizes": {"dump": 2**50, "filestore": 0, "files": 0, "total": 2**50}}
    LocalStore(store_dir).put_bytes(manifest_key(production.name, manifest["id"]), json.dumps(manifest).encode())
    host = host_for(state, services_env, ODOOOPS_BACKUP_STORE=json.dumps({"local": str(store_dir)}))
    check = by_id(Doctor(host, target).run())["backup.disk"]
    assert check.status == FAIL and f"{production.name}: " in check.detail and "1048576.00 GiB" in check.detail
    assert "backup_retention" in check.fix
