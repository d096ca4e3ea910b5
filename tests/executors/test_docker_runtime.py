"""DockerRuntime against the real private dockerd: ensure, no-restart re-ensure, replace, observe, remove."""

from __future__ import annotations

import copy
import json
import os
import uuid
from pathlib import Path
from typing import Any

import docker
import pytest

from reconciler.core.resources import read_text
from reconciler.errors import OdooOpsError
from reconciler.executors.artifacts import ArtifactInputs, ArtifactStore
from reconciler.executors.docker_runtime import (
    DockerRuntime,
    RemoveResult,
    check_command,
    validate_spec,
)
from reconciler.executors.health import wait_healthy

pytestmark = pytest.mark.integration

COMMIT_A, COMMIT_B = "a" * 40, "b" * 40


def new_env(prefix: str = "t") -> str:
    """A DNS-label env name unique per test and xdist worker."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main").replace("gw", "w")
    return f"{prefix}-{worker}-{uuid.uuid4().hex[:8]}"


class Deploy:
    """Builds container specs for the stand-in image, wired to the real PostgreSQL."""

    def __init__(self, image: str, db_env: dict[str, str], secret_file: Path) -> None:
        self.image, self.db_env, self.secret_file = image, db_env, secret_file

    def spec(self, env: str, commit: str = COMMIT_A, roles: tuple[str, ...] = ("web", "cron"),
             mounts: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        secret = {"source": str(self.secret_file), "target": "/run/secrets/db_password",
                  "read_only": True}
        base = {"image": self.image, "environment": dict(self.db_env),
                "mounts": [secret, *(mounts or [])], "stop_timeout_s": 5}
        containers = {
            "web": {"name": f"odooops-{env}-web", "role": "web", "cpus": 0.5,
                    "memory_bytes": 256 * 2**20, "http_port": 8069,
                    "command": ["odoo", "--workers=0", "--max-cron-threads=0", "--proxy-mode"]},
            "cron": {"name": f"odooops-{env}-cron", "role": "cron", "cpus": 0.25,
                     "memory_bytes": 128 * 2**20, "command": ["odoo", "--no-http",
                                                               "--max-cron-threads=1"]},
        }
        return {
            "env": env, "network": f"odooops-{env}",
            "labels": {"odooops.env": env, "odooops.tier": "ephemeral",
                       "odooops.branch": f"feature/{env}", "odooops.commit": commit,
                       "odooops.spec-digest": "5" * 64, "odooops.artifact": "9" * 64},
            "volumes": [{"name": f"odooops-{env}-data", "target": "/var/lib/odoo"}],
            "containers": [dict(base, **containers[r]) for r in roles],
        }


@pytest.fixture(scope="module")
def runtime(docker_host: str) -> Any:
    rt = DockerRuntime(docker_host)
    yield rt
    rt.close()


@pytest.fixture(scope="module")
def deploy(standin_image: str, pg_conn_params: dict[str, Any], pg_host_from_containers: str,
           tmp_path_factory: pytest.TempPathFactory) -> Deploy:
    secret = tmp_path_factory.mktemp("secrets") / "db_password"
    secret.write_text(pg_conn_params["password"])
    secret.chmod(0o644)  # the image runs as user odoo; a real deployment chowns it instead
    db_env = {"HOST": pg_host_from_containers, "PORT": str(pg_conn_params["port"]),
              "USER": pg_conn_params["user"], "PASSWORD_FILE": "/run/secrets/db_password"}
    return Deploy(standin_image, db_env, secret)


@pytest.fixture
def cleanup(runtime: DockerRuntime) -> Any:
    envs: list[str] = []
    yield envs
    for env in envs:
        runtime.remove(env)


def _state(client: docker.DockerClient, name: str) -> tuple[str, str, int]:
    attrs = client.api.inspect_container(name)
    return attrs["Id"], attrs["State"]["StartedAt"], attrs["RestartCount"]


def test_ensure_lifecycle(runtime: DockerRuntime, deploy: Deploy, docker_client: docker.DockerClient,
                          docker_host: str, cleanup: list[str]) -> None:
    env = new_env()
    cleanup.append(env)
    spec = deploy.spec(env)
    web, cron = f"odooops-{env}-web", f"odooops-{env}-cron"

    cold = runtime.ensure(spec)
    assert sorted(cold.created) == sorted([web, cron]) and cold.network_created
    assert cold.volumes_created == (f"odooops-{env}-data",)
    attrs = docker_client.api.inspect_container(web)
    assert attrs["State"]["Running"]
    assert spec["labels"].items() <= attrs["Config"]["Labels"].items()
    assert attrs["Config"]["Labels"]["odooops.role"] == "web"
    host = attrs["HostConfig"]
    assert host["Init"] is True and host["NanoCpus"] == 500_000_000
    assert host["Memory"] == 256 * 2**20 and host["RestartPolicy"]["Name"] == "unless-stopped"
    assert host["PortBindings"] == {"8069/tcp": [{"HostIp": "127.0.0.1", "HostPort": ""}]}
    password = Path(deploy.secret_file).read_text()
    assert password not in json.dumps([attrs["Config"]["Cmd"], attrs["Config"]["Env"], attrs["Args"]])
    net = docker_client.api.inspect_network(spec["network"])
    vol = docker_client.api.inspect_volume(f"odooops-{env}-data")
    for labels in (net["Labels"], vol["Labels"]):
        assert labels["odooops.env"] == env and labels["odooops.managed"] == "true"
    upstream = cold.observed.web_upstream
    assert upstream and upstream.startswith("127.0.0.1:")
    health = wait_healthy(f"http://{upstream}", timeout_s=90, interval_s=0.2)
    assert health.healthy, health

    before = {n: _state(docker_client, n) for n in (web, cron)}
    warm = runtime.ensure(spec)
    assert not warm.changed and sorted(warm.unchanged) == sorted([web, cron])
    assert {n: _state(docker_client, n) for n in (web, cron)} == before

    # Restart safety: a new runtime object knows the same state, from labels alone.
    fresh = DockerRuntime(docker_host)
    try:
        assert fresh.observe()[env] == runtime.observe()[env] == warm.observed
    finally:
        fresh.close()

    moved = runtime.ensure(deploy.spec(env, commit=COMMIT_B))
    assert sorted(moved.replaced) == sorted([web, cron]) and not moved.created
    after = {n: _state(docker_client, n) for n in (web, cron)}
    assert all(after[n][0] != before[n][0] for n in (web, cron))
    assert {c.commit for c in moved.observed.containers} == {COMMIT_B}

    anonymous = [m["Name"] for n in (web, cron)
                 for m in docker_client.api.inspect_container(n)["Mounts"]
                 if m["Type"] == "volume" and not m["Name"].startswith("odooops-")]
    removed = runtime.remove(env)
    assert sorted(removed.containers) == sorted([web, cron])
    flt = {"label": f"odooops.env={env}"}
    assert docker_client.api.containers(all=True, filters=flt) == []
    assert docker_client.api.networks(filters=flt) == []
    assert (docker_client.api.volumes(filters=flt).get("Volumes") or []) == []
    for name in anonymous:  # the image's VOLUME lines must not leave orphans behind
        with pytest.raises(docker.errors.NotFound):
            docker_client.api.inspect_volume(name)
    assert env not in runtime.observe()
    assert runtime.remove(env) == RemoveResult(env, (), (), ())


def test_handover_keeps_the_old_web_serving_until_promoted(
        runtime: DockerRuntime, deploy: Deploy, docker_client: docker.DockerClient,
        cleanup: list[str]) -> None:
    env = new_env()
    cleanup.append(env)
    web, cron = f"odooops-{env}-web", f"odooops-{env}-cron"
    first = runtime.ensure(deploy.spec(env))
    old_upstream = first.observed.web_upstream
    assert old_upstream and wait_healthy(f"http://{old_upstream}", timeout_s=90).healthy
    old_id = docker_client.api.inspect_container(web)["Id"]

    moved = runtime.ensure(deploy.spec(env, commit=COMMIT_B), handover=True)
    assert sorted(moved.replaced) == sorted([web, cron])
    (h,) = moved.handovers  # only the container that serves HTTP is handed over; cron is replaced
    assert (h.name, h.old_id, h.old_upstream) == (web, old_id, old_upstream)
    assert h.new_upstream and h.new_upstream != old_upstream
    # Both run: the old one still answers while the new one starts.
    assert docker_client.api.inspect_container(web)["State"]["Running"]
    assert docker_client.api.inspect_container(web + "-next")["Id"] == h.new_id
    assert wait_healthy(f"http://{old_upstream}", timeout_s=5).healthy
    assert wait_healthy(f"http://{h.new_upstream}", timeout_s=90).healthy
    runtime.promote(h)
    with pytest.raises(docker.errors.NotFound):
        docker_client.api.inspect_container(old_id)
    attrs = docker_client.api.inspect_container(web)
    assert attrs["Id"] == h.new_id and attrs["Config"]["Labels"]["odooops.commit"] == COMMIT_B
    again = runtime.ensure(deploy.spec(env, commit=COMMIT_B), handover=True)
    assert not again.changed and not again.handovers

    # A failed replacement is abandoned: the old container never stopped.
    trial = runtime.ensure(deploy.spec(env, commit=COMMIT_A), handover=True)
    (t,) = trial.handovers
    runtime.abandon(t)
    assert docker_client.api.inspect_container(web)["Id"] == h.new_id
    with pytest.raises(docker.errors.NotFound):
        docker_client.api.inspect_container(t.new_id)

    # What a killed process leaves behind is settled by the next ensure: both present -> the
    # half-started one goes; the replacement alone -> it takes the name.
    left = runtime.ensure(deploy.spec(env, commit=COMMIT_A), handover=True)
    (x,) = left.handovers
    settled = runtime.ensure(deploy.spec(env, commit=COMMIT_B))
    assert settled.unchanged == (web,) and [c.name for c in settled.observed.containers] == sorted([cron, web])
    with pytest.raises(docker.errors.NotFound):
        docker_client.api.inspect_container(x.new_id)
    left = runtime.ensure(deploy.spec(env, commit=COMMIT_A), handover=True)
    (y,) = left.handovers
    docker_client.api.remove_container(y.old_id, force=True)  # killed after retiring the old one
    finished = runtime.ensure(deploy.spec(env, commit=COMMIT_A))
    assert web in finished.unchanged
    assert docker_client.api.inspect_container(web)["Id"] == y.new_id
    # killed after the switch to the new one, before the old one was retired: the rerun of the same
    # deploy keeps the new one (it may already serve) and retires the old one
    left = runtime.ensure(deploy.spec(env, commit=COMMIT_B), handover=True)
    (z,) = left.handovers
    rerun = runtime.ensure(deploy.spec(env, commit=COMMIT_B), handover=True)
    assert web in rerun.unchanged and not rerun.handovers
    assert docker_client.api.inspect_container(web)["Id"] == z.new_id
    with pytest.raises(docker.errors.NotFound):
        docker_client.api.inspect_container(z.old_id)


def test_orphans_removed_and_foreign_names_refused(
        runtime: DockerRuntime, deploy: Deploy, docker_client: docker.DockerClient,
        cleanup: list[str]) -> None:
    env = new_env()
    cleanup.append(env)
    cron = f"odooops-{env}-cron"
    runtime.ensure(deploy.spec(env))
    web_only = runtime.ensure(deploy.spec(env, roles=("web",)))
    assert web_only.removed == (cron,) and web_only.unchanged == (f"odooops-{env}-web",)
    assert [c.role for c in web_only.observed.containers] == ["web"]

    foreign = docker_client.containers.create(deploy.image, ["true"], name=cron)
    try:
        with pytest.raises(OdooOpsError) as err:
            runtime.ensure(deploy.spec(env))
        assert err.value.code == "DOCKER_NAME_CONFLICT"
        assert docker_client.api.inspect_container(cron)["Id"] == foreign.id
    finally:
        foreign.remove(force=True)


def test_run_once_exit_code_logs_timeout_and_artifact_mount(
        runtime: DockerRuntime, deploy: Deploy, docker_client: docker.DockerClient,
        tmp_path: Path, cleanup: list[str]) -> None:
    def materialize(bundle: Path) -> None:
        module = bundle / "repo" / "addons" / "demo_mod"
        module.mkdir(parents=True)
        (module / "__manifest__.py").write_text("{'name': 'Demo module'}\n")

    artifact = ArtifactStore(tmp_path / "artifacts").ensure(
        ArtifactInputs(base_image="sha256:" + "0" * 64, addons=(("addons", "1" * 40),)),
        materialize)
    env = new_env()
    cleanup.append(env)
    spec = deploy.spec(env, mounts=[{"source": str(artifact.path), "target": "/mnt/extra-addons"}])
    web = spec["containers"][0]

    read = runtime.run_once(spec, web, ["cat", "/mnt/extra-addons/repo/addons/demo_mod/__manifest__.py"],
                            timeout_s=60)
    assert read.ok and "Demo module" in read.logs, read
    write = runtime.run_once(spec, web, ["sh", "-c", "touch /mnt/extra-addons/x"], timeout_s=60)
    assert write.exit_code not in (0, None), "the bundle must be mounted read-only"
    failed = runtime.run_once(spec, web, ["sh", "-c", "echo before-exit; exit 3"], timeout_s=60)
    assert failed.exit_code == 3 and "before-exit" in failed.logs
    slow = runtime.run_once(spec, web, ["sleep", "120"], timeout_s=1)
    assert slow.timed_out and slow.exit_code is None
    flt = {"label": [f"odooops.env={env}", "odooops.oneshot=true"]}
    assert docker_client.api.containers(all=True, filters=flt) == []


def test_missing_image_and_unreachable_engine(runtime: DockerRuntime, deploy: Deploy,
                                              tmp_path: Path, cleanup: list[str]) -> None:
    env = new_env()
    cleanup.append(env)
    spec = deploy.spec(env, roles=("cron",))
    spec["containers"][0]["image"] = f"odooops-test/missing-{uuid.uuid4().hex[:8]}:1"
    with pytest.raises(OdooOpsError) as err:
        runtime.ensure(spec)
    assert err.value.code == "IMAGE_UNAVAILABLE"

    with pytest.raises(OdooOpsError) as err:
        DockerRuntime(f"unix://{tmp_path}/no-dockerd.sock")
    assert err.value.code == "DOCKER_UNREACHABLE" and "dockerd" in err.value.remediation


def test_spec_validation() -> None:
    schema = json.loads(read_text("schemas", "container-spec.schema.json"))
    example = schema["examples"][0]
    validate_spec(example)

    broken = copy.deepcopy(example)
    broken["containers"][0]["command"].append("--db_password=hunter2")
    with pytest.raises(OdooOpsError) as err:
        validate_spec(broken)
    assert err.value.code == "CONTAINER_SPEC_INVALID"
    assert err.value.details["pointer"] == "/containers/0/command/4"

    mismatched = copy.deepcopy(example)
    mismatched["labels"]["odooops.env"] = "other"
    with pytest.raises(OdooOpsError, match=r"odooops\.env"):
        validate_spec(mismatched)

    reserved = copy.deepcopy(example)
    reserved["labels"]["odooops.managed"] = "false"
    with pytest.raises(OdooOpsError):
        validate_spec(reserved)

    with pytest.raises(OdooOpsError) as err:
        check_command(["odoo", "-w", "secret"])
    assert err.value.code == "SECRET_ON_COMMAND_LINE"
