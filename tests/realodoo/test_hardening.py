"""An environment the Applier deployed on real Odoo 19 runs hardened and still works: every container has no
capability, a read-only root file system and the platform's uid (no host account has it), and Odoo serves
/web/health through the router and writes an attachment into its filestore (owned by that uid)."""

from __future__ import annotations

import base64
import pwd
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import httpx
import pytest

from reconciler.executors.docker_runtime import ODOO_USER
from reconciler.secrets import SecretStore
from tests.realodoo.platform_project import PlatformProject, explain, platform_project

pytestmark = [pytest.mark.integration, pytest.mark.realodoo]

UID = int(ODOO_USER.split(":")[0])
CONFIG = """\
version: 1
odoo:
  version: "19.0"
mail_catcher: false
tiers:
  staging:
    workers: 2
    cron_workers: 1
    data: {source: fresh, neutralize: false, mask: false}
"""


def rpc(p: PlatformProject, env: str, model: str, method: str, *args: Any) -> Any:
    """Log in as the env's admin through the router and call a model method."""
    password = SecretStore(p.host.state_dir / "secrets").get(env, "admin_password")
    assert password, f"no admin password of {env}"
    with httpx.Client(base_url=p.host.router_http, headers={"Host": p.domain(env)}, timeout=120) as client:
        auth = client.post("/web/session/authenticate", json={
            "jsonrpc": "2.0", "method": "call", "id": 1,
            "params": {"db": env, "login": "admin", "password": password}}).json()
        assert (auth.get("result") or {}).get("uid"), f"{env}: admin login refused: {auth}"
        body = client.post(f"/web/dataset/call_kw/{model}/{method}", json={
            "jsonrpc": "2.0", "method": "call", "id": 2,
            "params": {"model": model, "method": method, "args": list(args), "kwargs": {}}}).json()
        assert "error" not in body, f"{model}.{method}: {body['error']}"
        return body["result"]


@pytest.fixture()
def deployed(tmp_path: Path, services_env: dict[str, str], odoo_image: str) -> Iterator[tuple[PlatformProject, str]]:
    with platform_project(tmp_path, services_env, odoo_image, {".odooops.yaml": CONFIG}, production=False) as p:
        branch = f"release/hd-{p.tag}"
        p.commit(branch, {"README": "staging\n"}, "staging")
        report = p.apply(branch)
        assert report.ok, explain(report)
        [rep] = report.environments
        yield p, rep.env


def test_deployed_odoo_runs_hardened_serves_and_writes_its_filestore(
        deployed: tuple[PlatformProject, str], docker_client: docker.DockerClient) -> None:
    p, env = deployed
    with pytest.raises(KeyError):
        pwd.getpwuid(UID)  # no host account has the uid Odoo runs as
    containers = docker_client.containers.list(filters={"label": [f"odooops.env={env}", "odooops.managed=true"]})
    assert {c.labels["odooops.role"] for c in containers} == {"web", "cron"}
    for c in containers:
        host = c.attrs["HostConfig"]
        assert host["CapDrop"] == ["ALL"] and not host["CapAdd"], c.name
        assert host["ReadonlyRootfs"] is True and "/tmp" in host["Tmpfs"], c.name
        assert c.attrs["Config"]["User"] == ODOO_USER, c.name
        top = c.top(ps_args="-o pid,uid")
        uids = {row[top["Titles"].index("UID")] for row in top["Processes"]}
        assert uids == {str(UID)}, top  # every process of the container, as the host sees it

    health = httpx.get(f"{p.host.router_http}/web/health", headers={"Host": p.domain(env)}, timeout=60)
    assert health.status_code == 200 and health.json().get("status") == "pass"

    content = b"written by Odoo on a read-only root file system\n"
    [att_id] = rpc(p, env, "ir.attachment", "create",
                   [{"name": "hardening.txt", "datas": base64.b64encode(content).decode()}])
    [att] = rpc(p, env, "ir.attachment", "read", [att_id], ["store_fname", "file_size"])
    assert att["store_fname"] and att["file_size"] == len(content)
    stored = p.host.filestore_dir(env, env) / att["store_fname"]
    assert stored.read_bytes() == content
    assert stored.stat().st_uid == UID and stored.parent.stat().st_uid == UID
