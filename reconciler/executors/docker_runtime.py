"""Run an environment's containers on a Docker Engine and read every bit of state back from labels."""

from __future__ import annotations

import functools
import json
import re
import time
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from dataclasses import replace
from typing import Any, cast

import docker
import docker.errors
import jsonschema
from docker.types import LogConfig, Mount

from reconciler.core.model import digest
from reconciler.core.resources import read_text
from reconciler.errors import OdooOpsError
from reconciler.executors import mail_catcher
from reconciler.executors.runtime import (  # noqa: F401  the records and labels also import from here
    IDENTITY,
    L_ARTIFACT,
    L_CDIGEST,
    L_COMMIT,
    L_EGRESS,
    L_ENV,
    L_GEVENT,
    L_HTTP,
    L_MANAGED,
    L_ONESHOT,
    L_PROJECT,
    L_ROLE,
    L_SPEC,
    L_TIER,
    NEXT,
    ODOO_USER,
    CatcherContainer,
    CatcherSpec,
    EngineFacts,
    EnsureResult,
    Handover,
    LogStream,
    ObservedContainer,
    ObservedRuntime,
    RemoveResult,
    RunResult,
)

_SECRET_FLAGS = re.compile(r"^(-w|--db_password|--db-password|--admin_passwd|--smtp_password)(=.*)?$")
_HEALTH = re.compile(r"\((healthy|unhealthy|health: starting)\)")
_UNREACHABLE_FIX = "start dockerd (bash scripts/services.sh start) or point DOCKER_HOST at a running engine"
# Every container runs with these: no capabilities (Odoo binds ports above 1024 and needs none), no
# privilege gain through setuid files, and a read-only root file system. Odoo writes its data directory
# (a mount) and temporary files (uploads, reports, tests): /tmp is a tmpfs, counted in the memory limit.
HARDENING: dict[str, Any] = {"cap_drop": ["ALL"], "security_opt": ["no-new-privileges"], "read_only": True,
                             "tmpfs": {"/tmp": "rw,nosuid,nodev,mode=1777"}}


@functools.cache
def _validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(json.loads(read_text("schemas", "container-spec.schema.json")))


def validate_spec(spec: dict[str, Any]) -> None:
    """Raise CONTAINER_SPEC_INVALID naming the JSON pointer of the first problem."""
    errors = sorted(_validator().iter_errors(spec), key=lambda e: [str(p) for p in e.absolute_path])
    problems = [("/" + "/".join(str(p) for p in e.absolute_path), e.message) for e in errors]
    if spec.get("labels", {}).get(L_ENV) not in (None, spec.get("env")):
        problems.append(("/labels/odooops.env", "must equal /env"))
    for key in ("name", "role"):
        values = [c.get(key) for c in spec.get("containers", [])]
        if len(values) != len(set(values)):
            problems.append(("/containers", f"container {key}s must be unique"))
    if problems:
        pointer, message = problems[0]
        raise OdooOpsError("CONTAINER_SPEC_INVALID", f"container spec {pointer}: {message}",
                           "fix the renderer output against schemas/container-spec.schema.json",
                           {"pointer": pointer, "problems": [list(p) for p in problems[:20]]})


def check_command(command: list[str]) -> None:
    """Passwords on a command line leak through `ps` and `docker inspect`: refuse them."""
    for arg in command:
        if _SECRET_FLAGS.match(arg):
            raise OdooOpsError("SECRET_ON_COMMAND_LINE", f"refusing to pass {arg.split('=')[0]} "
                               "on a command line", "pass PASSWORD_FILE (a mounted file) instead")


class DockerRuntime:
    """Narrow interface over the Docker SDK: ensure, observe, remove, run one-shots, read logs."""

    def __init__(self, base_url: str, timeout_s: float = 60.0) -> None:
        self.base_url = f"unix://{base_url}" if base_url.startswith("/") else base_url
        try:
            self.client = docker.DockerClient(base_url=self.base_url, timeout=int(timeout_s))
            self.client.ping()
        except (docker.errors.DockerException, OSError) as exc:
            raise _unreachable(self.base_url, exc) from exc
        self.api = self.client.api

    def close(self) -> None:
        self.client.close()

    def engine(self, what: str) -> AbstractContextManager[None]:
        """A block whose engine failures become OdooOpsError naming `what`."""
        return self._engine(what)

    @contextmanager
    def _engine(self, what: str) -> Iterator[None]:
        """Turn engine failures into OdooOpsError with the operation that failed."""
        try:
            yield
        except OdooOpsError:
            raise
        except docker.errors.APIError as exc:
            raise OdooOpsError("DOCKER_API_ERROR", f"{what}: {exc.explanation or exc}",
                               "read the engine's message above; `docker info` shows its state",
                               {"engine": self.base_url, "status": exc.status_code}) from exc
        except (docker.errors.DockerException, OSError) as exc:
            raise _unreachable(self.base_url, exc) from exc

    # ------------------------------------------------------------------ observe

    def observe(self) -> dict[str, ObservedRuntime]:
        """All managed environments, rebuilt from labels (three engine calls in total)."""
        return self._observe([])

    def observe_env(self, env: str) -> ObservedRuntime:
        return self._observe([f"{L_ENV}={env}"]).get(env, ObservedRuntime(env))

    def _observe(self, extra: list[str]) -> dict[str, ObservedRuntime]:
        with self._engine("observe"):
            flt = {"label": [f"{L_MANAGED}=true", *extra]}
            summaries = self.api.containers(all=True, filters=flt)
            networks = self.api.networks(filters=flt)
            volumes = self.api.volumes(filters=flt).get("Volumes") or []
        found: dict[str, tuple[list[ObservedContainer], list[str], list[str]]] = {}
        for kind, items in ((0, summaries), (1, networks), (2, volumes)):
            for item in items:
                if env := (item.get("Labels") or {}).get(L_ENV):
                    entry = _from_summary(item) if kind == 0 else item["Name"]
                    found.setdefault(env, ([], [], []))[kind].append(entry)  # type: ignore[arg-type]  # entry's type follows kind
        return {env: ObservedRuntime(env, tuple(sorted(c, key=lambda x: x.name)),
                                     tuple(sorted(n)), tuple(sorted(v)))
                for env, (c, n, v) in sorted(found.items())}

    # ------------------------------------------------------------------ ensure

    def ensure(self, spec: dict[str, Any], *, handover: bool = False) -> EnsureResult:
        """Make the engine hold exactly this spec; running containers that already match stay up.

        With handover=True a running container that serves HTTP is not stopped: its replacement starts
        beside it (named NAME-next) and the result lists it; promote() retires the old one, abandon()
        the new one. Other containers are replaced stop-then-start."""
        started = time.monotonic()
        validate_spec(spec)
        env = spec["env"]
        created: list[str] = []
        replaced: list[str] = []
        unchanged: list[str] = []
        removed: list[str] = []
        pending: list[tuple[str, ObservedContainer, str, int]] = []
        with self._engine(f"ensure {env}"):
            # Resolving images first means a missing image changes nothing at all.
            all_labels = {c["name"]: self._container_labels(spec, c) for c in spec["containers"]}
            network_created, volumes_created = self._ensure_network_and_volumes(spec)
            current = self._settle_handovers(env, all_labels)
            for name, stale in current.items():
                if name not in all_labels:
                    self._stop_and_remove(stale.id, 10)
                    removed.append(name)
            for c in spec["containers"]:
                labels = all_labels[c["name"]]
                obs = current.get(c["name"])
                name = c["name"]
                if obs is not None:
                    if _matches(obs, labels):
                        unchanged.append(name)
                        continue
                    replaced.append(name)
                    if handover and obs.running and c.get("http_port"):
                        name = name + NEXT
                        pending.append((c["name"], obs, name, c.get("stop_timeout_s", 20)))
                    else:
                        self._stop_and_remove(obs.id, c.get("stop_timeout_s", 20))
                else:
                    self._refuse_foreign(name, env)
                    created.append(name)
                kwargs = self._create_kwargs(spec, c, labels)
                container = self.client.containers.create(**{**kwargs, "name": name})
                container.start()
            observed = self.observe_env(env)
            by_name = {c.name: c for c in observed.containers}
            handovers = tuple(
                Handover(canonical, old.id, by_name[new].id, old.http_upstream, by_name[new].http_upstream,
                         timeout, old.gevent_upstream, by_name[new].gevent_upstream)
                for canonical, old, new, timeout in pending)
            if not pending and len(observed.networks) > 1:
                self._drop_other_networks(spec)
                observed = self.observe_env(env)
        return EnsureResult(env, tuple(created), tuple(replaced), tuple(unchanged), tuple(removed),
                            network_created, tuple(volumes_created), observed,
                            time.monotonic() - started, handovers)

    def promote(self, h: Handover) -> None:
        """The new container takes over: the old one stops (gracefully) and the new one takes its name."""
        with self._engine(f"promote {h.name}"):
            self._stop_and_remove(h.old_id, h.stop_timeout_s)
            self.api.rename(h.new_id, h.name)

    def abandon(self, h: Handover) -> None:
        """The new container failed: remove it; the old one never stopped serving."""
        with self._engine(f"abandon {h.name}{NEXT}"):
            self._stop_and_remove(h.new_id, 0)

    def _settle_handovers(self, env: str, wanted: dict[str, dict[str, str]]) -> dict[str, ObservedContainer]:
        """Finish what a killed process left of a handover, then return the env's containers by name.

        NAME-next alone: the old container was already retired, so it takes the name. Both present:
        the one that is what this ensure wants stays (the switch to it may have happened), else the
        old one stays; the other goes."""
        current = {c.name: c for c in self.observe_env(env).containers if not c.oneshot}
        for name in [n for n in current if n.endswith(NEXT)]:
            canonical = name[: -len(NEXT)]
            new, old, want = current.pop(name), current.get(canonical), wanted.get(canonical)
            if old is not None and not (_matches(new, want) and not _matches(old, want)):
                self._stop_and_remove(new.id, 0)
                continue
            if old is not None:
                self._stop_and_remove(old.id, 10)
            self.api.rename(new.id, canonical)
            current[canonical] = replace(new, name=canonical)
        return current

    def _ensure_network_and_volumes(self, spec: dict[str, Any]) -> tuple[bool, list[str]]:
        env, labels = spec["env"], self._shared_labels(spec)
        network_created = False
        # The name filter matches substrings, so compare names exactly.
        existing = [n for n in self.api.networks(names=[spec["network"]]) if n["Name"] == spec["network"]]
        internal = bool(spec.get("internal_network"))
        if existing:
            _check_owner("network", spec["network"], existing[0].get("Labels"), env)
            if bool(existing[0].get("Internal")) != internal:
                raise OdooOpsError(
                    "DOCKER_NETWORK_MISMATCH", f"network {spec['network']} exists "
                    f"{'without' if internal else 'with'} Docker's internal flag, and the spec asks the opposite",
                    f"remove it (odooops env destroy {env}, or docker network rm {spec['network']} once no "
                    "container uses it) and apply again", {"network": spec["network"], "env": env})
        else:
            # internal: no masquerading and no forwarding out of the bridge; the host (PostgreSQL on its
            # addresses, the router) still reaches it and is reached from it.
            self.api.create_network(spec["network"], driver="bridge", labels=labels, internal=internal,
                                    check_duplicate=True)
            network_created = True
        self._connect_peers(spec)
        volumes_created: list[str] = []
        for vol in spec["volumes"]:
            try:
                info = self.api.inspect_volume(vol["name"])
                _check_owner("volume", vol["name"], info.get("Labels"), env)
            except docker.errors.NotFound:
                self.api.create_volume(vol["name"], labels=labels)
                volumes_created.append(vol["name"])
        return network_created, volumes_created

    def _connect_peers(self, spec: dict[str, Any]) -> None:
        """Containers outside the environment it must reach (the mail catcher), on its network by name."""
        for peer in spec.get("network_peers") or []:
            try:
                info = self.api.inspect_container(peer)
            except docker.errors.NotFound:
                continue
            if spec["network"] in ((info.get("NetworkSettings") or {}).get("Networks") or {}):
                continue
            with suppress(docker.errors.APIError):  # connected meanwhile by a concurrent ensure
                self.api.connect_container_to_network(info["Id"], spec["network"])

    def _disconnect_all(self, network: str) -> None:
        for cid in (self.api.inspect_network(network).get("Containers") or {}):
            with suppress(docker.errors.APIError):  # gone meanwhile
                self.api.disconnect_container_from_network(cid, network, force=True)

    def _drop_other_networks(self, spec: dict[str, Any]) -> None:
        """The env's networks the spec no longer names (e.g. its plain one after it became internal), once
        no container of the env uses them; peers are disconnected first."""
        for name in self.observe_env(spec["env"]).networks:
            if name == spec["network"]:
                continue
            with suppress(docker.errors.APIError):
                info = self.api.inspect_network(name)
                attached = (info.get("Containers") or {}).keys()
                envs = {(self.api.inspect_container(cid)["Config"].get("Labels") or {}).get(L_ENV) for cid in attached}
                if spec["env"] in envs:
                    continue
                self._disconnect_all(name)
                self.api.remove_network(name)

    def _refuse_foreign(self, name: str, env: str) -> None:
        """A container with our name that is not ours for this env is never touched."""
        try:
            info = self.api.inspect_container(name)
        except docker.errors.NotFound:
            return
        _check_owner("container", name, info["Config"].get("Labels"), env)
        # Ours but invisible to the label filter cannot happen; a leftover one-shot can't
        # share this name either, so removing here is safe.
        self._stop_and_remove(info["Id"], 10)

    def _stop_and_remove(self, container_id: str, stop_timeout_s: int) -> None:
        try:
            self.api.stop(container_id, timeout=stop_timeout_s)
            # v=True also drops anonymous volumes an image's VOLUME lines made: nothing orphaned.
            self.api.remove_container(container_id, v=True, force=True)
        except docker.errors.NotFound:
            pass

    def _shared_labels(self, spec: dict[str, Any]) -> dict[str, str]:
        # Networks and volumes outlive commits, so they carry only labels that never change.
        return {L_ENV: spec["env"], L_TIER: spec["labels"][L_TIER], L_MANAGED: "true"}

    def _container_labels(self, spec: dict[str, Any], c: dict[str, Any]) -> dict[str, str]:
        labels = dict(spec["labels"])
        labels.update({L_MANAGED: "true", L_ROLE: c["role"],
                       L_CDIGEST: digest(self._resolved(spec, c))})
        if c.get("http_port"):
            labels[L_HTTP] = str(c["http_port"])
        if c.get("gevent_port"):
            labels[L_GEVENT] = str(c["gevent_port"])
        if spec.get("internal_network"):
            labels[L_EGRESS] = "none"
        return labels

    def _resolved(self, spec: dict[str, Any], c: dict[str, Any]) -> dict[str, Any]:
        """Everything that shapes the container, with the image resolved to its id."""
        return {"container": {k: v for k, v in c.items() if k != "name"},
                "image_id": self.image_id(c["image"]), "network": spec["network"],
                "internal_network": bool(spec.get("internal_network")),
                "volumes": spec["volumes"], "tier": spec["labels"][L_TIER],
                # A release that hardens containers further replaces running ones at their next ensure.
                "hardening": HARDENING}

    def image_id(self, ref: str) -> str:
        try:
            return self.api.inspect_image(ref)["Id"]
        except docker.errors.NotFound:
            pass
        try:
            self.client.images.pull(ref)
            return self.api.inspect_image(ref)["Id"]
        except (docker.errors.APIError, docker.errors.ImageNotFound) as exc:
            raise OdooOpsError(
                "IMAGE_UNAVAILABLE", f"image {ref} is not on the engine and could not be pulled",
                f"load or build it on the engine (docker load / docker build -t {ref} ...)",
                {"image": ref, "engine": self.base_url}) from exc

    def _create_kwargs(self, spec: dict[str, Any], c: dict[str, Any], labels: dict[str, str],
                       *, command: list[str] | None = None, oneshot: bool = False) -> dict[str, Any]:
        argv = list(command or c["command"])
        check_command(argv)
        entrypoint = None
        if c.get("odoo_direct") and argv and argv[0] == "odoo":
            # The official image's entrypoint passes the db_* settings of odoo.conf to Odoo as
            # options, the password included, where `ps` on the host shows it: run Odoo itself,
            # which reads them from its config file (ODOO_RC). Other commands keep the entrypoint.
            entrypoint, argv = ["odoo"], argv[1:] or ["-c", "/etc/odoo/odoo.conf"]
        mounts = [Mount(v["target"], v["name"], type="volume") for v in spec["volumes"]]
        mounts += [Mount(m["target"], m["source"], type="bind", read_only=m.get("read_only", True))
                   for m in c.get("mounts", [])]
        kwargs: dict[str, Any] = {
            "image": c["image"], "command": argv, "entrypoint": entrypoint, "labels": labels,
            "name": f"{c['name']}-run-{uuid.uuid4().hex[:8]}" if oneshot else c["name"],
            "environment": c.get("environment", {}), "mounts": mounts, "network": spec["network"],
            "init": True,  # PID 1 must forward SIGTERM and reap zombies; python does neither
            "pids_limit": c.get("pids_limit", 4096),
            **{k: (dict(v) if isinstance(v, dict) else list(v) if isinstance(v, list) else v)
               for k, v in HARDENING.items()},
            "extra_hosts": c.get("extra_hosts") or None,
            "log_config": LogConfig(type="json-file", config={"max-size": "20m", "max-file": "3"}),
        }
        if c.get("user"):
            kwargs["user"] = c["user"]
        if c.get("cpus"):
            kwargs["nano_cpus"] = round(c["cpus"] * 1e9)
        if c.get("memory_bytes"):
            kwargs["mem_limit"] = kwargs["memswap_limit"] = c["memory_bytes"]
        if not oneshot:
            kwargs["restart_policy"] = {"Name": "unless-stopped"}
        if not oneshot and not spec.get("internal_network"):
            # Loopback only, Docker picks the host port; observe() reads it back for the router. An internal
            # network publishes nothing: the host reaches the container at its address there.
            ports = [c[k] for k in ("http_port", "gevent_port") if c.get(k)]
            kwargs["ports"] = {f"{p}/tcp": ("127.0.0.1",) for p in ports}
        return kwargs

    # ------------------------------------------------------------------ remove

    def remove(self, env: str) -> RemoveResult:
        """Containers (one-shots too), network and volumes of the env; idempotent."""
        with self._engine(f"remove {env}"):
            obs = self.observe_env(env)
            for c in obs.containers:
                self._stop_and_remove(c.id, 10)
            for name in obs.networks:
                with suppress(docker.errors.NotFound):
                    self._disconnect_all(name)  # peers (the mail catcher) stay up, off this network
                    self.api.remove_network(name)
            for name in obs.volumes:
                with suppress(docker.errors.NotFound):
                    self.api.remove_volume(name, force=True)
        return RemoveResult(env, tuple(c.name for c in obs.containers), obs.networks, obs.volumes)

    # ------------------------------------------------------------------ one-shots and logs

    def run_once(self, spec: dict[str, Any], container: dict[str, Any], command: list[str],
                 timeout_s: float, tail: int = 200) -> RunResult:
        """Run `command` once with the container's image, env, mounts and network; always cleaned up."""
        validate_spec(spec)
        started = time.monotonic()
        with self._engine(f"run_once {spec['env']}"):
            self._ensure_network_and_volumes(spec)
            self.image_id(container["image"])
            labels = dict(spec["labels"], **{L_MANAGED: "true", L_ROLE: container["role"],
                                             L_ONESHOT: "true"})
            kwargs = self._create_kwargs(spec, container, labels, command=command, oneshot=True)
            one = self.client.containers.create(**kwargs)
            try:
                one.start()
                exit_code: int | None = None
                try:
                    exit_code = int(one.wait(timeout=max(timeout_s, 0.1))["StatusCode"])
                except OSError:
                    # requests raises ReadTimeout (an OSError) at the deadline; anything earlier
                    # is the engine going away.
                    if time.monotonic() - started < timeout_s:
                        raise
                    one.kill()
                logs = one.logs(stdout=True, stderr=True, tail=tail).decode("utf-8", "replace")
            finally:
                self._stop_and_remove(cast(str, one.id), 0)
        return RunResult(kwargs["name"], exit_code, exit_code is None, logs,
                         time.monotonic() - started)

    def logs(self, env: str, role: str = "web", tail: int = 200) -> str:
        obs = self.observe_env(env).container(role)
        if obs is None:
            raise OdooOpsError("CONTAINER_NOT_FOUND", f"environment {env} has no {role} container",
                               f"odooops status {env}  # is the environment deployed?",
                               {"env": env, "role": role})
        return self.container_logs(obs.id, tail, what=f"{env}/{role}")

    def container_logs(self, container_id: str, tail: int = 200, what: str = "") -> str:
        """The tail of one container's output (a handover's new container has no role of its own yet)."""
        with self._engine(f"logs {what or container_id[:12]}"):
            raw = self.api.logs(container_id, stdout=True, stderr=True, tail=tail)
        return raw.decode("utf-8", "replace")

    def follow_logs(self, container_id: str, tail: int) -> LogStream:
        """One container's output from its last `tail` lines on, as it comes, until closed or it stops."""
        stream: LogStream = self.api.logs(container_id, stdout=True, stderr=True, tail=tail, stream=True,
                                          follow=True, until=None)
        return stream

    # ------------------------------------------------------------------ single containers

    def cpu_count(self) -> int:
        """The engine host's CPUs (a container's CPU limit may not exceed them)."""
        return int(self.client.info().get("NCPU") or 1)

    def engine_facts(self) -> EngineFacts:
        with self.engine("read the engine's version and settings"):
            version, info = self.client.version(), self.client.info()
        return EngineFacts(
            version=str(version.get("Version") or "?"), api_version=str(version.get("ApiVersion") or "?"),
            memory_limit=bool(info.get("MemoryLimit")), cpu_limit=bool(info.get("CpuCfsQuota")),
            cgroup_version=str(info.get("CgroupVersion") or "?"), storage_driver=str(info.get("Driver") or "?"),
            root_dir=str(info.get("DockerRootDir") or ""), mem_total=int(info.get("MemTotal") or 0),
            warnings=tuple(str(w) for w in info.get("Warnings") or ()))

    def stop_container(self, container_id: str, timeout_s: int) -> None:
        """Stop (not remove) one container: SIGTERM, then SIGKILL after timeout_s."""
        self.api.stop(container_id, timeout=timeout_s)

    def start_container(self, container_id: str) -> None:
        self.api.start(container_id)

    def force_remove(self, container_id: str) -> None:
        """Remove one container at once, running or not (its anonymous volumes stay)."""
        self.client.containers.get(container_id).remove(force=True)

    # ------------------------------------------------------------------ the host's mail catcher

    def inspect_catcher(self, name: str) -> CatcherContainer | None:
        return mail_catcher.inspect(self.client, name)

    def run_catcher(self, spec: CatcherSpec, networks: list[str]) -> None:
        mail_catcher.run(self.client, spec, networks)

    def remove_catcher(self, container_id: str) -> None:
        mail_catcher.remove(self.client, container_id)

    def catcher_log_tail(self, name: str, tail: int) -> str:
        return mail_catcher.log_tail(self.client, name, tail)


def _from_summary(s: dict[str, Any]) -> ObservedContainer:
    labels = s.get("Labels") or {}
    ports: dict[int, int] = {}
    for p in s.get("Ports") or []:
        if p.get("PublicPort") and p.get("Type") == "tcp":
            ports.setdefault(int(p["PrivatePort"]), int(p["PublicPort"]))
    health = _HEALTH.search(s.get("Status") or "")

    def port(label: str) -> int | None:
        return ports.get(int(labels[label])) if labels.get(label, "").isdigit() else None

    address = None
    if labels.get(L_EGRESS) == "none" and s.get("State") == "running":
        networks = (s.get("NetworkSettings") or {}).get("Networks") or {}
        address = next((n["IPAddress"] for _, n in sorted(networks.items()) if n.get("IPAddress")), None)

    def upstream(label: str) -> str | None:
        published = port(label)
        if published:
            return f"127.0.0.1:{published}"
        return f"{address}:{labels[label]}" if address and labels.get(label, "").isdigit() else None

    return ObservedContainer(
        name=(s.get("Names") or ["/?"])[0].lstrip("/"), id=s["Id"], role=labels.get(L_ROLE, ""),
        state=s.get("State", ""),
        health=health.group(1).replace("health: ", "") if health else None,
        commit=labels.get(L_COMMIT), spec_digest=labels.get(L_SPEC), artifact=labels.get(L_ARTIFACT),
        container_digest=labels.get(L_CDIGEST), image=s.get("Image", ""),
        http_host_port=port(L_HTTP), gevent_host_port=port(L_GEVENT),
        oneshot=labels.get(L_ONESHOT) == "true", project=labels.get(L_PROJECT),
        http_upstream=upstream(L_HTTP), gevent_upstream=upstream(L_GEVENT))


def _matches(c: ObservedContainer, labels: dict[str, str] | None) -> bool:
    """The container is running and is what these labels describe (IDENTITY)."""
    have = {L_COMMIT: c.commit, L_SPEC: c.spec_digest, L_ARTIFACT: c.artifact, L_CDIGEST: c.container_digest}
    return labels is not None and c.running and all(have[k] == labels.get(k) for k in IDENTITY)


def _check_owner(kind: str, name: str, labels: dict[str, str] | None, env: str) -> None:
    labels = labels or {}
    if labels.get(L_MANAGED) == "true" and labels.get(L_ENV) == env:
        return
    owner = f"environment {labels[L_ENV]}" if labels.get(L_ENV) else "something outside OdooOps"
    raise OdooOpsError("DOCKER_NAME_CONFLICT", f"{kind} {name} exists and belongs to {owner}",
                       f"remove or rename it (docker {kind} rm {name}) if it is stale",
                       {"kind": kind, "name": name, "env": env})


def _unreachable(base_url: str, exc: BaseException) -> OdooOpsError:
    return OdooOpsError("DOCKER_UNREACHABLE", f"cannot reach the Docker engine at {base_url}: {exc}",
                        _UNREACHABLE_FIX, {"engine": base_url})

