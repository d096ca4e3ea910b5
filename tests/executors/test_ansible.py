"""prepare_host against real Ansible, PostgreSQL, Docker Engine and a private Caddy."""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from reconciler.errors import OdooOpsError
from reconciler.executors.ansible import prepare_host

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def bare_caddy(tmp_path: Path) -> Iterator[str]:
    """A Caddy with only its admin API configured: the playbook must create the server itself
    (the shared Caddy's server is never touched)."""
    admin = _free_port()
    conf = tmp_path / "caddy.json"
    conf.write_text(json.dumps({"admin": {"listen": f"127.0.0.1:{admin}", "config": {"persist": False}}}))
    caddy = shutil.which("caddy") or pytest.fail("caddy is not installed: bash scripts/install.sh")
    env = {"HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path / "d"), "XDG_CONFIG_HOME": str(tmp_path / "c"),
           "PATH": "/usr/bin:/bin"}
    proc = subprocess.Popen([caddy, "run", "--config", str(conf)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{admin}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(url + "/config/", timeout=1, trust_env=False)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    pytest.fail("private caddy did not start")
                time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def host_vars(tmp_path: Path, pg_conn_params: dict[str, Any], docker_host: str, bare_caddy: str,
              unique_name: Callable[[str], str]) -> Iterator[dict[str, Any]]:
    group = unique_name("grp")
    yield {"state_dir": str(tmp_path / "srv" / "state"), "filestore_root": str(tmp_path / "srv" / "filestore"),
           "caddy_config_dir": str(tmp_path / "etc" / "caddy"),
           "docker_socket": docker_host.removeprefix("unix://"),
           "pg_host": pg_conn_params["host"], "pg_port": pg_conn_params["port"], "pg_user": pg_conn_params["user"],
           "pg_password": pg_conn_params["password"], "pg_group_role": group,
           "caddy_admin_url": bare_caddy, "caddy_listen": [f"127.0.0.1:{_free_port()}"]}
    with psycopg.connect(dbname="postgres", autocommit=True, **pg_conn_params) as conn:
        conn.execute(f'DROP ROLE IF EXISTS "{group}"')


def test_prepare_host_converges_then_changes_nothing(tmp_path: Path, host_vars: dict[str, Any],
                                                     pg_conn_params: dict[str, Any]) -> None:
    events: list[dict] = []
    pdd = tmp_path / "runner"
    first = prepare_host(host_vars, pdd, on_event=events.append)
    assert (first.changed, first.failed) == (3, 0)  # tasks: the directories, the group role, the Caddy server
    assert {e["task"] for e in events} >= {"Platform directories exist with their modes",
                                           f"Docker Engine answers on {host_vars['docker_socket']}"}

    modes = {k: stat.S_IMODE(os.stat(host_vars[k]).st_mode) for k in ("state_dir", "filestore_root",
                                                                       "caddy_config_dir")}
    assert modes == {"state_dir": 0o700, "filestore_root": 0o711, "caddy_config_dir": 0o750}
    with psycopg.connect(dbname="postgres", **pg_conn_params) as conn:
        assert conn.execute("SELECT rolcanlogin, rolsuper FROM pg_roles WHERE rolname = %s",
                            (host_vars["pg_group_role"],)).fetchone() == (False, False)
    server = httpx.get(f"{host_vars['caddy_admin_url']}/config/apps/http/servers/odooops", trust_env=False).json()
    assert server["listen"] == host_vars["caddy_listen"]

    second = prepare_host(host_vars, pdd)
    assert (second.changed, second.failed) == (0, 0)
    assert second.ok >= 5

    # The admin password reached psql through a pgpass file that is gone now; nothing under
    # the runner's directory holds it, and no env/ files are left to be read by the next run.
    files = [p for p in pdd.rglob("*") if p.is_file()]
    assert files and not any(pg_conn_params["password"] in p.read_text(errors="replace") for p in files)
    assert not (pdd / "env").exists()
    command = json.loads(next(pdd.glob("artifacts/*/command")).read_text())
    passfile = json.loads(command["command"][command["command"].index("-e") + 1])["odooops_pg_passfile"]
    assert not Path(passfile).exists()


def test_prepare_host_failure_names_the_task(tmp_path: Path, host_vars: dict[str, Any]) -> None:
    bad = dict(host_vars, pg_password="not-the-password-4242")
    with pytest.raises(OdooOpsError) as failed:
        prepare_host(bad, tmp_path / "runner")
    err = failed.value
    assert err.code == "ANSIBLE_FAILED"
    assert err.details["task"].startswith(f"PostgreSQL at {host_vars['pg_host']}:{host_vars['pg_port']} answers")
    assert "password authentication failed" in err.message
    assert "not-the-password-4242" not in str(err.to_dict())


def test_unknown_variables_are_refused_before_running(tmp_path: Path) -> None:
    with pytest.raises(OdooOpsError, match="unknown host variables: pg_pasword"):
        prepare_host({"pg_pasword": "x"}, tmp_path)
