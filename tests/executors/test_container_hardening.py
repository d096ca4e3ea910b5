"""Every container the runtime starts (services and one-shots) on the stand-in: no capabilities, a read-only
root file system with a /tmp tmpfs, no privilege gain, and the platform's uid (no host account has it)."""

from __future__ import annotations

import os
import pwd
from pathlib import Path
from typing import Any

import docker
import pytest

from reconciler.executors.docker_runtime import ODOO_USER, DockerRuntime
from reconciler.executors.health import wait_healthy
from tests.executors.test_docker_runtime import Deploy, cleanup, deploy, new_env, runtime  # noqa: F401

pytestmark = pytest.mark.integration

UID, GID = (int(x) for x in ODOO_USER.split(":"))
PROBE = ("id -u; grep CapEff /proc/self/status; touch /tmp/t && echo TMP-WRITABLE; "
         "touch /var/lib/odoo/written && echo DATA-WRITABLE; touch /usr/lib/x 2>&1 || echo ROOT-READ-ONLY")


def test_no_host_account_has_the_platforms_uid() -> None:
    with pytest.raises(KeyError):
        pwd.getpwuid(UID)


def test_services_and_one_shots_run_hardened_as_the_platform_user(
        runtime: DockerRuntime, deploy: Deploy, docker_client: docker.DockerClient,  # noqa: F811
        cleanup: list[str], tmp_path: Path) -> None:  # noqa: F811
    env = new_env("hd")
    cleanup.append(env)
    data = tmp_path / "data"  # the environment's data directory, owned by the platform's uid (as apply does)
    data.mkdir()
    os.chown(data, UID, GID)
    data.chmod(0o700)
    spec: dict[str, Any] = deploy.spec(env, roles=("web",), mounts=[
        {"source": str(data), "target": "/var/lib/odoo", "read_only": False}])
    spec["volumes"] = []
    spec["containers"][0]["user"] = ODOO_USER
    result = runtime.ensure(spec)

    attrs = docker_client.api.inspect_container(f"odooops-{env}-web")
    host = attrs["HostConfig"]
    assert host["CapDrop"] == ["ALL"] and not host["CapAdd"]
    assert host["ReadonlyRootfs"] is True and "/tmp" in (host["Tmpfs"] or {})
    assert "no-new-privileges" in host["SecurityOpt"] and not host["Privileged"]
    assert attrs["Config"]["User"] == ODOO_USER
    upstream = result.observed.web_upstream
    assert upstream and wait_healthy(f"http://{upstream}", timeout_s=120, interval_s=0.2).healthy

    run = runtime.run_once(spec, spec["containers"][0], ["sh", "-c", PROBE], timeout_s=120)
    lines = run.logs.split()
    assert run.ok, run.logs
    assert str(UID) in lines and "0000000000000000" in lines  # no effective capability at all
    assert "TMP-WRITABLE" in lines and "DATA-WRITABLE" in lines and "ROOT-READ-ONLY" in lines, run.logs
    assert "Read-only file system" in run.logs
    assert (data / "written").stat().st_uid == UID
