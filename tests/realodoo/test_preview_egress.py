"""A pull-request preview on real Odoo 19, deployed by the Applier, runs on an internal network: Odoo serves
/web/health (with its database check) through the router at the container's address, mail from its network
reaches the platform's mail catcher (by name, authenticated as the preview) and is filed under it, and an
address outside the host (in a network namespace the test makes) is unreachable from it."""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import httpx
import pytest

from reconciler.data import mail
from reconciler.executors.docker_runtime import DockerRuntime
from tests.daemon.gitserve import free_port
from tests.example_repo import git
from tests.executors.test_preview_egress import PROBE, outside  # noqa: F401
from tests.realodoo.platform_project import PlatformProject, explain, platform_project

pytestmark = [pytest.mark.integration, pytest.mark.realodoo]

CONFIG = """\
version: 1
odoo:
  version: "19.0"
tiers:
  preview:
    data: {source: fresh}
"""
SEND = """
import smtplib, sys
from email.message import EmailMessage
host, port, user, password = sys.argv[1:5]
msg = EmailMessage()
msg["From"], msg["To"], msg["Subject"] = "preview@example.com", "someone@example.com", "from an internal network"
msg.set_content("captured, never delivered")
with smtplib.SMTP(host, int(port), timeout=60) as s:
    s.login(user, password)
    s.send_message(msg)
print("SENT", flush=True)
"""


@pytest.fixture()
def preview(tmp_path: Path, services_env: dict[str, str], odoo_image: str) -> Iterator[tuple[PlatformProject, str]]:
    port = free_port()
    try:
        with platform_project(tmp_path, services_env, odoo_image, {".odooops.yaml": CONFIG}, production=False) as p:
            # A catcher of this test's own (its name follows its port): a shared one is reconfigured by other
            # tests' hosts, whose credentials files do not hold this preview's login.
            p.host = dataclasses.replace(p.host, mail_catcher_port=port)
            number = random.randrange(10**6, 10**7)  # env pr-<number>: unique on the shared PostgreSQL
            p.commit(f"topic-{p.tag}", {"README": "a contribution\n"}, "pull request")
            git(p.work, "update-ref", f"refs/pull/{number}/head", "HEAD")
            report = p.apply(f"pull/{number}")
            assert report.ok, explain(report)
            [rep] = report.environments
            assert rep.env == f"pr-{number}"
            files_step = next(s.detail for s in rep.steps if s.name == "files")
            assert f"{mail.CATCHER_NAME}-{port}:{mail.CONTAINER_PORT} on its internal network" in files_step, files_step
            yield p, rep.env
    finally:
        # After the project's cleanup destroyed the preview with the catcher still on its network.
        mail.remove_catcher(DockerRuntime(services_env["DOCKER_HOST"]), f"{mail.CATCHER_NAME}-{port}")


def test_a_preview_serves_and_mails_through_the_platform_but_reaches_nothing_outside(
        preview: tuple[PlatformProject, str], docker_client: docker.DockerClient,
        outside: str) -> None:  # noqa: F811
    p, env = preview
    entry = p.entry(env)
    assert entry["settings"]["runs_untrusted_code"] is True and entry["tier"] == "preview"
    spec: dict[str, Any] = entry["container_spec"]
    network = docker_client.api.inspect_network(spec["network"])
    assert network["Internal"] is True
    catcher = p.applier().mail_catcher_name
    assert catcher in {c["Name"] for c in (network["Containers"] or {}).values()}

    # Served through the router at the container's address on that network; Odoo reaches PostgreSQL.
    route = httpx.get(f"{p.host.router_http}/web/health", params={"db_server_status": "1"},
                      headers={"Host": p.domain(env)}, timeout=60)
    assert route.status_code == 200 and route.json().get("status") == "pass", route.text
    web = DockerRuntime(p.host.docker_host).observe_env(env).container("web")
    assert web is not None and web.http_host_port is None and web.http_upstream
    assert web.http_upstream.split(":")[0] == \
        docker_client.api.inspect_container(web.id)["NetworkSettings"]["Networks"][spec["network"]]["IPAddress"]

    runtime = DockerRuntime(p.host.docker_host)
    one = spec["containers"][0]
    # The catcher, by name on the preview's network, with the preview's own login: the message is filed there.
    user, password = mail.smtp_credentials(p.secrets, env)
    sent = runtime.run_once(spec, one, ["python3", "-c", SEND, catcher, str(mail.CONTAINER_PORT), user, password],
                            timeout_s=180)
    assert sent.ok and "SENT" in sent.logs, sent.logs
    assert [m["subject"] for m in mail.list_messages(p.host, env)] == ["from an internal network"]

    # Nothing beyond the host: the namespace's listener never sees a connection from the preview.
    probe = runtime.run_once(spec, one, ["python3", "-c", PROBE, outside], timeout_s=180)
    assert probe.ok and f"{outside} OK" not in probe.logs and outside in probe.logs, probe.logs

    # The pull request goes away: the preview is destroyed, its network too, while the catcher stays up.
    git(p.work, "update-ref", "-d", f"refs/pull/{env.removeprefix('pr-')}/head")
    report = p.apply(entry["branch"])
    assert report.ok and [e.env for e in report.environments] == [env], explain(report)
    assert not docker_client.networks.list(names=[spec["network"]])
    assert docker_client.containers.get(catcher).status == "running"
