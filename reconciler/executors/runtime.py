"""What the controller, the sweeps, logs, exec and data operations need from a container engine.

`Runtime` is the interface; `docker_runtime.DockerRuntime` implements it on one Docker Engine and
`runtimes.open_runtime` picks the implementation for a host. The records here (what the engine holds,
what an ensure or a one-shot did) and the label names are the same whatever the engine.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol

L_ENV, L_TIER, L_COMMIT = "odooops.env", "odooops.tier", "odooops.commit"
L_SPEC, L_ARTIFACT = "odooops.spec-digest", "odooops.artifact"
L_MANAGED, L_ROLE, L_CDIGEST = "odooops.managed", "odooops.role", "odooops.container-digest"
L_ONESHOT, L_HTTP, L_GEVENT = "odooops.oneshot", "odooops.http-port", "odooops.gevent-port"
L_PROJECT = "odooops.project"
# "none" on containers of an internal network (no route out): the router reaches them at their address.
L_EGRESS = "odooops.egress"
# A container is left alone only when all of these match what the spec asks for.
IDENTITY = (L_COMMIT, L_SPEC, L_ARTIFACT, L_CDIGEST)

# A replacement started beside the container it replaces (blue/green) carries this suffix until promoted.
NEXT = "-next"

# The uid:gid Odoo runs as, whatever user the image names: no host account has it (Debian's useradd hands
# out at most 60000), so a process that escapes its container owns no file of a host user (the official
# image's uid 101 is `postgres` on a Debian host). The filestore and odoo.conf are owned by it.
ODOO_USER = "61000:61000"

@dataclass(frozen=True)
class EngineFacts:
    """What `odooops doctor` reads about the engine: versions, whether it enforces limits, where it stores."""

    version: str
    api_version: str
    memory_limit: bool  # container memory limits are enforced (cgroup memory controller)
    cpu_limit: bool  # CPU quotas are enforced (CFS quota)
    cgroup_version: str
    storage_driver: str
    root_dir: str  # the engine's data root on its host
    mem_total: int  # bytes of memory on the engine's host
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class ObservedContainer:
    """One container as the engine reports it; identity comes from its labels only."""

    name: str
    id: str
    role: str
    state: str  # created | running | restarting | exited | paused | dead
    health: str | None  # healthy | unhealthy | starting | None (no healthcheck)
    commit: str | None
    spec_digest: str | None
    artifact: str | None
    container_digest: str | None
    image: str
    http_host_port: int | None
    gevent_host_port: int | None
    oneshot: bool = False
    project: str | None = None  # odooops.project: which repository's environment this is
    # host:port the router and health checks use: 127.0.0.1 and the published port, or (internal network,
    # nothing published) the container's address on its network and the container port.
    http_upstream: str | None = None
    gevent_upstream: str | None = None

    @property
    def running(self) -> bool:
        return self.state == "running"


@dataclass(frozen=True)
class ObservedRuntime:
    """Everything the engine holds for one environment."""

    env: str
    containers: tuple[ObservedContainer, ...] = ()
    networks: tuple[str, ...] = ()
    volumes: tuple[str, ...] = ()

    def container(self, role: str) -> ObservedContainer | None:
        return next((c for c in self.containers if c.role == role and not c.oneshot), None)

    @property
    def web_upstream(self) -> str | None:
        """`127.0.0.1:PORT` of the web container (its address on an internal network), what the router proxies to."""
        web = self.container("web")
        return web.http_upstream if web else None

    @property
    def websocket_upstream(self) -> str | None:
        web = self.container("web")
        return web.gevent_upstream if web else None


@dataclass(frozen=True)
class Handover:
    """A new container running beside the one it replaces: the old one keeps serving until promote()."""

    name: str  # the name the new container takes once promoted
    old_id: str
    new_id: str
    old_upstream: str | None  # 127.0.0.1:PORT of each, what the router proxies to
    new_upstream: str | None
    stop_timeout_s: int
    old_websocket: str | None = None  # 127.0.0.1:PORT of each one's gevent (websocket) port, if published
    new_websocket: str | None = None


@dataclass(frozen=True)
class EnsureResult:
    env: str
    created: tuple[str, ...]
    replaced: tuple[str, ...]
    unchanged: tuple[str, ...]
    removed: tuple[str, ...]  # containers of the env that the spec no longer lists
    network_created: bool
    volumes_created: tuple[str, ...]
    observed: ObservedRuntime
    duration_s: float
    handovers: tuple[Handover, ...] = ()  # replacements still waiting for promote() or abandon()

    @property
    def changed(self) -> bool:
        return bool(self.created or self.replaced or self.removed or self.network_created
                    or self.volumes_created)


@dataclass(frozen=True)
class RemoveResult:
    env: str
    containers: tuple[str, ...]
    networks: tuple[str, ...]
    volumes: tuple[str, ...]


@dataclass(frozen=True)
class RunResult:
    container: str
    exit_code: int | None  # None when it timed out and was killed
    timed_out: bool
    logs: str  # the tail, stdout and stderr interleaved
    duration_s: float

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


@dataclass(frozen=True)
class CatcherContainer:
    """The host's mail catcher container as the engine reports it."""

    id: str
    labels: dict[str, str]
    running: bool
    networks: tuple[str, ...]  # every network it is attached to, the engine's default one included


@dataclass(frozen=True)
class CatcherSpec:
    """What the mail catcher container runs: its own entrypoint, two bind mounts, one published port."""

    name: str
    image: str
    command: list[str]
    entrypoint: list[str]
    labels: dict[str, str]
    user: str  # uid:gid
    memory_bytes: int
    conf_dir: str  # host directory mounted read-only at conf_mount
    conf_mount: str
    spool_dir: str  # host directory mounted read-write at spool_mount
    spool_mount: str
    container_port: int
    address: str  # host address and port the container port is published on
    port: int


class LogStream(Protocol):
    """A container's output as it comes; close() ends the iteration (from another thread too)."""

    def __iter__(self) -> Iterator[bytes]: ...

    def close(self) -> None: ...


class Runtime(Protocol):
    """A container engine: environments' containers, networks and volumes, read back from labels."""

    base_url: str  # the engine's address: one engine, one set of container names

    def close(self) -> None: ...

    def engine(self, what: str) -> AbstractContextManager[None]:
        """A block whose engine failures become OdooOpsError naming `what`."""
        ...

    # environments
    def observe(self) -> dict[str, ObservedRuntime]: ...

    def observe_env(self, env: str) -> ObservedRuntime: ...

    def ensure(self, spec: dict[str, Any], *, handover: bool = False) -> EnsureResult: ...

    def promote(self, h: Handover) -> None: ...

    def abandon(self, h: Handover) -> None: ...

    def remove(self, env: str) -> RemoveResult: ...

    def image_id(self, ref: str) -> str: ...

    def cpu_count(self) -> int: ...

    def engine_facts(self) -> EngineFacts: ...

    # one-shots, logs and single containers
    def run_once(self, spec: dict[str, Any], container: dict[str, Any], command: list[str],
                 timeout_s: float, tail: int = 200) -> RunResult: ...

    def logs(self, env: str, role: str = "web", tail: int = 200) -> str: ...

    def container_logs(self, container_id: str, tail: int = 200, what: str = "") -> str: ...

    def follow_logs(self, container_id: str, tail: int) -> LogStream: ...

    def stop_container(self, container_id: str, timeout_s: int) -> None: ...

    def force_remove(self, container_id: str) -> None: ...

    # the host's mail catcher (data/mail.py)
    def inspect_catcher(self, name: str) -> CatcherContainer | None: ...

    def start_container(self, container_id: str) -> None: ...

    def run_catcher(self, spec: CatcherSpec, networks: list[str]) -> None: ...

    def remove_catcher(self, container_id: str) -> None: ...

    def catcher_log_tail(self, name: str, tail: int) -> str: ...
