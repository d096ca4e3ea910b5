"""scripts/services.sh writes .work/host.yaml for the embedded services: its writer, run alone in bash with
the script's own variables, gives a host file that validates and carries every setting the services need."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from reconciler.platform.host import HOST_CONFIG_ENV, HostSettings, resolve_host
from tests.example_repo import ROOT

SCRIPT = ROOT / "scripts" / "services.sh"


def _function(name: str) -> str:
    text = SCRIPT.read_text(encoding="utf-8")
    found = re.search(rf"^{name}\(\) {{\n.*?^}}\n", text, re.S | re.M)
    assert found, f"{name} is not in {SCRIPT}"
    return found.group(0)


def test_the_services_script_writes_a_valid_host_file(tmp_path: Path) -> None:
    work = tmp_path / ".work"
    (work / "pg").mkdir(parents=True)
    password = work / "pg" / "password"
    password.write_text("0123456789abcdef")
    password.chmod(0o600)
    script = "\n".join([
        "set -euo pipefail",
        f'W="{work}"; PG_DIR="$W/pg"; PG_PORT=55432; PG_USER=odooops; PG_BIN=/usr/lib/postgresql/15/bin',
        'DK_SOCK="$W/docker/docker.sock"; CADDY_ADMIN_PORT=12019; ROUTER_PORT=18080; HOST_FILE="$W/host.yaml"',
        _function("write_host_config"),
        "write_host_config 10.207.0.1",
    ])
    subprocess.run(["bash", "-c", script], check=True)
    host_file = work / "host.yaml"
    assert host_file.stat().st_mode & 0o777 == 0o600
    assert not list(work.glob("host.yaml.*"))  # the temporary file was moved into place
    host = HostSettings.from_env(None, {HOST_CONFIG_ENV: str(host_file), "XDG_STATE_HOME": str(tmp_path / "st")})
    assert (host.pg_host, host.pg_port, host.pg_admin_user, host.pg_admin_password) == (
        "127.0.0.1", 55432, "odooops", "0123456789abcdef")
    assert host.pg_host_from_containers == "10.207.0.1" == host.mail_catcher_host
    assert host.docker_host == f"unix://{work}/docker/docker.sock"
    assert (host.caddy_admin, host.router_http, host.caddy_server) == (
        "http://127.0.0.1:12019", "http://127.0.0.1:18080", "odooops")
    assert host.pg_bin_dir == Path("/usr/lib/postgresql/15/bin")
    origins = {r.setting.key: r.origin for r in resolve_host({HOST_CONFIG_ENV: str(host_file)})[2]}
    assert origins["postgres.port"] == f"{host_file}:5" and origins["router.http"] == f"{host_file}:14"
    assert "0123456789abcdef" not in host_file.read_text()  # the password stays in its own file


def test_services_env_names_the_host_file() -> None:
    writer = _function("write_env")
    assert "ODOOOPS_HOST_CONFIG=$HOST_FILE" in writer
    start = _function("cmd_start")
    assert start.index("write_host_config") < start.index("write_env")  # services.env never names a missing file
