"""`odooops serve` starts from the host file alone: no PostgreSQL, Docker or Caddy variable in its
environment, only --host-config naming a host.yaml written from the embedded services' values."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import yaml

from reconciler.executors.postgres import Postgres
from reconciler.platform.host import HOST_CONFIG_ENV, HostSettings
from tests.daemon.gitserve import free_port, git, git_daemon, wait_serve_ready
from tests.example_repo import ROOT, build_example


def _host_file(tmp_path: Path, services_env: dict[str, str]) -> Path:
    password = tmp_path / "secrets" / "pg.password"
    password.parent.mkdir(mode=0o700)
    password.write_text(services_env["ODOOOPS_PG_PASSWORD"] + "\n")
    password.chmod(0o600)
    keys = tmp_path / "keys"
    doc = {
        "version": 1,
        "state_dir": str(tmp_path / "state"),
        "postgres": {"host": services_env["ODOOOPS_PG_HOST"], "port": int(services_env["ODOOOPS_PG_PORT"]),
                     "admin_user": services_env["ODOOOPS_PG_USER"], "password_file": str(password),
                     "host_from_containers": services_env["ODOOOPS_PG_HOST_FROM_CONTAINERS"],
                     "bin_dir": services_env["ODOOOPS_PG_BIN"]},
        "docker": {"host": services_env["DOCKER_HOST"]},
        "router": {"caddy_admin": services_env["ODOOOPS_CADDY_ADMIN"], "http": services_env["ODOOOPS_ROUTER_HTTP"],
                   "caddy_server": services_env["ODOOOPS_CADDY_SERVER"]},
        "keys": {name: str(keys / f"{name}.key") for name in ("audit", "backup", "secrets", "api")},
        # this worker's catcher port (tests/conftest.py): parallel workers never share one
        "mail_catcher": {"port": int(os.environ.get("ODOOOPS_MAIL_CATCHER_PORT", "11124"))},
    }
    path = tmp_path / "host.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def test_serve_starts_with_only_the_host_file(tmp_path: Path, services_env: dict[str, str]) -> None:
    host_file = _host_file(tmp_path, services_env)
    # the file's values reach the real PostgreSQL (the password through its file)
    host = HostSettings.from_env(None, {HOST_CONFIG_ENV: str(host_file)})
    assert host.state_dir == tmp_path / "state"
    assert "postgres" in Postgres.from_host(host).list_databases("postgres")

    srv = tmp_path / "srv"
    bare = srv / "acme.git"
    refs = build_example(bare, bare=True, oca_dest=tmp_path / "oca-web.git")
    git(bare, "branch", "base", "develop")  # a branch no rule maps: the daemon polls, nothing to apply
    git(bare, "symbolic-ref", "HEAD", "refs/heads/base")
    for ref in refs:
        git(bare, "update-ref", "-d", ref)
    # Nothing of the services in the environment: no ODOOOPS_*, no DOCKER_HOST, a HOME of its own.
    env = {"PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '/usr/bin:/bin')}",
           "HOME": str(tmp_path / "home"), "LANG": "C.UTF-8"}
    log = tmp_path / "serve.log"
    port = free_port()
    with git_daemon(srv) as url:
        proc = subprocess.Popen(
            [sys.executable, "-m", "reconciler", "--host-config", str(host_file), "serve", "--repo",
             f"{url}/acme.git", "--listen", f"127.0.0.1:{port}", "--poll-interval", "3600",
             "--sweep-interval", "3600"],
            env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT, cwd=ROOT)
        base = f"http://127.0.0.1:{port}"
        try:
            wait_serve_ready(proc, base, log)
            assert httpx.get(f"{base}/healthz").json() == {"status": "ok"}
        finally:
            proc.terminate()
            proc.wait(60)
    assert proc.returncode == 0, log.read_text()[-3000:]
    # the state and the keys went where the host file says, nowhere under HOME
    assert (tmp_path / "state").is_dir() and (tmp_path / "keys" / "api.key").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "keys" / "audit.key").exists() and not (tmp_path / "home" / ".config").exists()
    assert "Traceback" not in log.read_text()
