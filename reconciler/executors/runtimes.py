"""Pick the container engine a host runs its environments on."""

from __future__ import annotations

from reconciler.executors.docker_runtime import DockerRuntime
from reconciler.executors.runtime import Runtime
from reconciler.platform.host import HostSettings


def open_runtime(host: HostSettings, timeout_s: float = 60.0) -> Runtime:
    """The runtime of this host: a Docker Engine at DOCKER_HOST (the only implementation so far);
    `timeout_s` bounds each engine call (doctor asks for a short one)."""
    return DockerRuntime(host.docker_host, timeout_s=timeout_s)
