"""Containers of an environment that runs untrusted code sit on an internal network (stand-in, real Docker):
they reach nothing beyond the host (an address inside a network namespace this test makes answers a
container of a plain network, proving the probe can succeed, and not theirs), yet they still reach
PostgreSQL on the host, a peer container (the mail catcher's place) by name, and the host reaches them
at their address (what the router proxies to)."""

from __future__ import annotations

import random
import subprocess
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import docker
import pytest

from reconciler.executors.docker_runtime import DockerRuntime
from reconciler.executors.health import wait_healthy
from tests.executors.test_docker_runtime import Deploy, cleanup, deploy, new_env, runtime  # noqa: F401

pytestmark = pytest.mark.integration

# Connect to each host:port given; print one line per target: OK, or the error's class.
PROBE = """
import socket, sys
for target in sys.argv[1:]:
    host, port = target.rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=20).close()
        print(target, "OK", flush=True)
    except OSError as exc:
        print(target, type(exc).__name__, flush=True)
"""
LISTENER = """
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(16)
while True:
    conn, _ = s.accept()
    conn.close()
"""


def sh(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True)


@pytest.fixture()
def outside() -> Iterator[str]:
    """host:port of a listener in a network namespace of its own, reached from the host over a veth pair
    (an address outside every Docker network: what the internet is to a container)."""
    tag = uuid.uuid4().hex[:6]
    ns, host_if, ns_if = f"oo-eg-{tag}", f"oeh{tag}", f"oen{tag}"
    # A /30 of 198.18.0.0/15 (reserved for network tests), one of 32768: parallel tests pick different ones.
    block = random.randrange(0, 2**15) * 4
    base = f"198.{18 + block // 65536}.{block // 256 % 256}"
    host_ip, ns_ip = f"{base}.{block % 256 + 1}", f"{base}.{block % 256 + 2}"
    sh("ip", "netns", "add", ns)
    listener = None
    try:
        sh("ip", "link", "add", host_if, "type", "veth", "peer", "name", ns_if)
        sh("ip", "link", "set", ns_if, "netns", ns)
        sh("ip", "addr", "add", f"{host_ip}/30", "dev", host_if)
        sh("ip", "link", "set", host_if, "up")
        sh("ip", "netns", "exec", ns, "ip", "addr", "add", f"{ns_ip}/30", "dev", ns_if)
        sh("ip", "netns", "exec", ns, "ip", "link", "set", ns_if, "up")
        sh("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")
        sh("ip", "netns", "exec", ns, "ip", "route", "add", "default", "via", host_ip)
        listener = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", LISTENER, ns_ip, "8099"])
        probe = subprocess.run([sys.executable, "-c", "import time, socket\n"
                                "for _ in range(600):\n"
                                "    try:\n"
                                f"        socket.create_connection(('{ns_ip}', 8099), timeout=2).close(); break\n"
                                "    except OSError: time.sleep(0.2)\n"
                                "else: raise SystemExit(1)\n"], check=False)
        assert probe.returncode == 0, "the namespace's listener never answered the host"
        yield f"{ns_ip}:8099"
    finally:
        if listener is not None:
            listener.kill()
            listener.wait()
        subprocess.run(["ip", "link", "del", host_if], check=False, capture_output=True)
        subprocess.run(["ip", "netns", "del", ns], check=False, capture_output=True)


@pytest.fixture()
def peer(docker_client: docker.DockerClient, standin_image: str) -> Iterator[str]:
    """A container outside any environment that listens on 1025, as the mail catcher does."""
    name = f"oo-peer-{uuid.uuid4().hex[:8]}"
    c = docker_client.containers.run(standin_image, ["-c", LISTENER, "0.0.0.0", "1025"], entrypoint=["python3"],
                                     name=name, detach=True, init=True, labels={"odooops.test": "egress-peer"})
    try:
        yield name
    finally:
        c.remove(force=True)


def probe(rt: DockerRuntime, spec: dict[str, Any], *targets: str) -> dict[str, str]:
    """From a one-shot container of the environment: each target's outcome ("OK" or the error)."""
    run = rt.run_once(spec, spec["containers"][0], ["python3", "-c", PROBE, *targets], timeout_s=180)
    assert run.ok, run.logs
    seen: dict[str, str] = {}
    for line in run.logs.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] in targets:
            seen[parts[0]] = parts[1]
    assert set(seen) == set(targets), run.logs
    return seen


def test_an_internal_network_reaches_the_host_and_its_peers_but_nothing_beyond(
        runtime: DockerRuntime, deploy: Deploy, docker_client: docker.DockerClient,  # noqa: F811
        cleanup: list[str], outside: str, peer: str, pg_host_from_containers: str,  # noqa: F811
        pg_conn_params: dict[str, Any]) -> None:
    postgres = f"{pg_host_from_containers}:{pg_conn_params['port']}"
    plain_env, preview_env = new_env("eg"), new_env("pv")
    cleanup.extend([plain_env, preview_env])

    # A plain environment network: the address outside answers (so the probe can succeed).
    plain = deploy.spec(plain_env, roles=("web",))
    runtime.ensure(plain)
    assert probe(runtime, plain, outside)[outside] == "OK"

    preview = deploy.spec(preview_env, roles=("web",))
    preview.update(network=f"odooops-{preview_env}-internal", internal_network=True, network_peers=[peer])
    result = runtime.ensure(preview)
    net = docker_client.api.inspect_network(preview["network"])
    assert net["Internal"] is True
    assert peer in {c["Name"] for c in (net["Containers"] or {}).values()}
    web = docker_client.api.inspect_container(f"odooops-{preview_env}-web")
    assert not web["NetworkSettings"]["Ports"] or not any(web["NetworkSettings"]["Ports"].values())
    # Nothing published: the host reaches the web container at its address on the internal network.
    upstream = result.observed.web_upstream
    address = web["NetworkSettings"]["Networks"][preview["network"]]["IPAddress"]
    assert upstream == f"{address}:8069"
    assert wait_healthy(f"http://{upstream}", timeout_s=120, interval_s=0.2).healthy

    seen = probe(runtime, preview, outside, postgres, f"{peer}:1025")
    assert seen[postgres] == "OK" and seen[f"{peer}:1025"] == "OK", seen
    assert seen[outside] != "OK", seen

    # A later ensure keeps everything as it is (the peer stays connected, nothing is replaced).
    again = runtime.ensure(preview)
    assert not again.changed and again.observed.web_upstream == upstream

    # Removing the environment takes its network although the peer is on it; the peer keeps running.
    removed = runtime.remove(preview_env)
    assert removed.networks == (preview["network"],)
    assert not docker_client.networks.list(names=[preview["network"]])
    assert docker_client.containers.get(peer).status == "running"
