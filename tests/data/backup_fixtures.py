"""Fixtures of the backup tests: a real S3 server (moto) on loopback, a tiny tmpfs, a closed port."""

from __future__ import annotations

import socket
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
import pytest

from reconciler.platform.host import HostSettings
from tests.controller.test_s3_backend import s3_endpoint
from tests.example_repo import build_example, git

__all__ = ["closed_port", "deployed", "s3_bucket", "s3_endpoint", "small_tmpfs"]


@pytest.fixture()
def s3_bucket(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh bucket on the moto server (its keys are "testing"/"testing")."""
    name = f"backups-{uuid.uuid4().hex[:8]}"
    boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1", aws_access_key_id="testing",
                 aws_secret_access_key="testing").create_bucket(Bucket=name)
    return name


@contextmanager
def mounted_tmpfs(mnt: Path, size: str) -> Iterator[Path]:
    """A tmpfs of `size` at mnt (the tests run as root), unmounted afterwards even when the test fails:
    a real full disk, not a simulated one."""
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mnt)], check=True)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


@pytest.fixture()
def small_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs."""
    with mounted_tmpfs(tmp_path / "tiny", "2m") as mnt:
        yield mnt


@pytest.fixture()
def closed_port() -> int:
    """A loopback port nothing listens on (bound then released; connections get refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory, services_env: dict[str, str],
             standin_image: str) -> Iterator[dict[str, Any]]:
    """One example feature-branch environment applied for real (stand-in Odoo), shared by a module.

    Like tests/controller/conftest.py's `world`, but applied once per module: an apply costs
    tens of seconds on the shared 2-core machine. Destroyed afterwards."""
    from reconciler.controller.apply import Applier
    from reconciler.controller.planning import Project, compute_plan
    from reconciler.core.model import Action, ActionKind
    from reconciler.data.context import DataContext
    from reconciler.executors.docker_runtime import DockerRuntime
    from reconciler.executors.postgres import Postgres
    from reconciler.secrets import SecretStore

    tmp = tmp_path_factory.mktemp("deployed")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ODOOOPS_SECRET_KEY_FILE", str(tmp / "secret.key"))
        mp.setenv("ODOOOPS_BACKUP_KEY_FILE", str(tmp / "keys" / "backup.key"))
        work = tmp / "project"
        build_example(work, bare=False, oca_dest=tmp / "oca-web.git")
        branch = f"feature/b{uuid.uuid4().hex[:8]}"
        git(work, "checkout", "-q", "-b", branch, "develop")
        env = dict(services_env)
        env["ODOOOPS_IMAGE_OVERRIDES"] = f"odoo:19.0={standin_image}"
        env["ODOOOPS_GIT_MIRRORS"] = f"https://github.com/OCA/web.git={(tmp / 'oca-web.git').as_uri()}"
        state = tmp / "state"
        host = HostSettings.from_env(state, env)
        project = Project.open(str(work), state_dir=state)
        outcome = compute_plan(project, branches=[branch])
        report = Applier(project, host).apply(outcome)
        try:
            assert report.ok, [(e.env, e.error) for e in report.environments]
            name = report.environments[0].env
            ctx = DataContext(host=host, pg=Postgres.from_host(host), secrets=SecretStore(state / "secrets"),
                              runtime=DockerRuntime(host.docker_host), store=project.store, project_id=project.id)
            yield {"env": name, "ctx": ctx, "host": host, "project": project, "work": work, "tmp": tmp}
        finally:
            applier = Applier(project, host)
            for n, entry in project.store.entries().items():
                applier._destroy(Action(env=n, action=ActionKind.DESTROY, branch=entry.get("branch", ""),
                                        tier=entry.get("tier"), reason="test cleanup", old_commit=entry.get("commit")))
