"""`odooops doctor` as a process: its table, its JSON, its exit codes, and its bound on a hung service."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.service.test_doctor import closed_port, silent_server

ROOT = Path(__file__).resolve().parents[2]


def doctor(tmp_path: Path, services_env: dict[str, str], *args: str, **overrides: str
           ) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ODOOOPS_")}
    env.update(services_env)
    env.update(overrides, PYTHONPATH=str(ROOT), HOME=str(tmp_path / "home"))
    # The timeout only guards the test run against a hang; doctor's own bound is what is checked.
    return subprocess.run([sys.executable, "-m", "reconciler", "doctor", "--state-dir", str(tmp_path / "state"),
                           *args], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)


def test_json_lists_every_check_and_a_failure_exits_1(tmp_path: Path, services_env: dict[str, str]) -> None:
    out = doctor(tmp_path, services_env, "--json", ODOOOPS_PG_PORT=str(closed_port()))
    assert out.returncode == 1, out.stderr
    checks = json.loads(out.stdout)
    assert all(set(c) == {"id", "status", "detail", "fix", "duration_ms"} for c in checks)
    by_id = {c["id"]: c for c in checks}
    assert by_id["postgres.reachable"]["status"] == "fail"
    assert by_id["router.admin"]["status"] == "ok" and by_id["terraform.core"]["status"] == "ok"


def test_exit_0_when_nothing_failed(tmp_path: Path, services_env: dict[str, str]) -> None:
    out = doctor(tmp_path, services_env, "--json")
    checks = json.loads(out.stdout)
    failed = [c for c in checks if c["status"] == "fail"]
    assert out.returncode == (1 if failed else 0), failed


def test_the_table_names_check_status_detail_and_fix(tmp_path: Path, services_env: dict[str, str]) -> None:
    out = doctor(tmp_path, services_env, ODOOOPS_CADDY_ADMIN=f"http://127.0.0.1:{closed_port()}")
    assert out.returncode == 1
    header = next(line for line in out.stdout.splitlines() if "check" in line and "status" in line)
    assert all(word in header for word in ("detail", "fix"))
    assert "router.admin" in out.stdout and "Connection refused" in out.stdout  # "[Errno 111]" kept as text


def test_without_host_settings_one_check_says_how_to_load_them(tmp_path: Path) -> None:
    out = doctor(tmp_path, {}, "--json")
    assert out.returncode == 1
    assert json.loads(out.stdout)[0]["id"] == "host.settings"


def test_a_usage_error_exits_1_like_every_command(tmp_path: Path, services_env: dict[str, str]) -> None:
    out = doctor(tmp_path, services_env, "--timeout", "soon")
    assert out.returncode == 1 and "--timeout" in out.stderr


def test_a_hung_postgres_is_reported_within_the_timeout(tmp_path: Path, services_env: dict[str, str]) -> None:
    with silent_server() as port:
        out = doctor(tmp_path, services_env, "--json", "--timeout", "1", ODOOOPS_PG_PORT=str(port))
    assert out.returncode == 1
    check = {c["id"]: c for c in json.loads(out.stdout)}["postgres.reachable"]
    assert check["status"] == "fail" and check["detail"].startswith("no answer within 1 s")
