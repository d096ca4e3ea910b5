"""The host's mail catcher container on a Docker Engine: inspect, start, run, remove, read its log.

What the catcher is and when it changes is decided in data/mail.py; this module only speaks to the engine.
"""

from __future__ import annotations

import contextlib
from typing import Any, cast

import docker
import docker.errors
from docker.types import LogConfig, Mount

from reconciler.errors import OdooOpsError
from reconciler.executors.runtime import CatcherContainer, CatcherSpec


def create_kwargs(spec: CatcherSpec) -> dict[str, Any]:
    return {
        "image": spec.image, "name": spec.name, "command": spec.command,
        "entrypoint": spec.entrypoint,
        "labels": spec.labels,
        "user": spec.user, "init": True,  # python as PID 1 would ignore SIGTERM
        "restart_policy": {"Name": "unless-stopped"},
        "mem_limit": spec.memory_bytes, "memswap_limit": spec.memory_bytes, "pids_limit": 256,
        "cap_drop": ["ALL"], "security_opt": ["no-new-privileges"], "read_only": True,
        "mounts": [Mount(spec.conf_mount, spec.conf_dir, type="bind", read_only=True),
                   Mount(spec.spool_mount, spec.spool_dir, type="bind", read_only=False)],
        "ports": {f"{spec.container_port}/tcp": (spec.address, spec.port)},
        "log_config": LogConfig(type="json-file", config={"max-size": "10m", "max-file": "3"}),
    }


def inspect(client: docker.DockerClient, name: str) -> CatcherContainer | None:
    try:
        info = client.api.inspect_container(name)
    except docker.errors.NotFound:
        return None
    networks = (info.get("NetworkSettings") or {}).get("Networks") or {}
    return CatcherContainer(id=info["Id"], labels=info["Config"].get("Labels") or {},
                            running=bool(info["State"].get("Running")), networks=tuple(networks))


def run(client: docker.DockerClient, spec: CatcherSpec, networks: list[str]) -> None:
    """Create and start the container, attached to `networks` too; nothing is left behind when it fails."""
    try:
        container = client.containers.create(**create_kwargs(spec))
        container.start()
        for network in networks:
            with contextlib.suppress(docker.errors.APIError):  # removed meanwhile with its environment
                client.api.connect_container_to_network(cast(str, container.id), network)
    except docker.errors.APIError as exc:
        with contextlib.suppress(docker.errors.APIError):
            client.api.remove_container(spec.name, v=True, force=True)
        raise OdooOpsError(
            "MAIL_CATCHER_FAILED", f"the mail catcher could not start on "
            f"{spec.address}:{spec.port}: {exc.explanation or exc}",
            "free that address or choose another with ODOOOPS_MAIL_CATCHER_HOST / "
            "ODOOOPS_MAIL_CATCHER_PORT, then re-run the apply",
            {"container": spec.name, "image": spec.image}) from exc


def remove(client: docker.DockerClient, container_id: str) -> None:
    with contextlib.suppress(docker.errors.NotFound):
        client.api.stop(container_id, timeout=10)  # SIGTERM: the server closes its listener
        # v=True: the image's VOLUME lines (/var/lib/odoo, ...) gave it anonymous volumes; drop them.
        client.api.remove_container(container_id, v=True, force=True)


def log_tail(client: docker.DockerClient, name: str, tail: int) -> str:
    """The last lines of its output, or "" when the engine cannot give them."""
    try:
        return client.api.logs(name, stdout=True, stderr=True, tail=tail).decode("utf-8", "replace")
    except docker.errors.APIError:
        return ""
