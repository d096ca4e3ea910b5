"""Fixtures of the apply tests: an example project work tree with a unique branch, and host settings."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reconciler.platform.host import HostSettings
from tests.example_repo import build_example, git


@pytest.fixture()
def world(tmp_path: Path, services_env: dict[str, str], standin_image: str,
          monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """A work tree of the example project with a uniquely named feature branch, and host settings."""
    monkeypatch.setenv("ODOOOPS_SECRET_KEY_FILE", str(tmp_path / "secret.key"))
    work = tmp_path / "project"
    build_example(work, bare=False, oca_dest=tmp_path / "oca-web.git")
    branch = f"feature/t{uuid.uuid4().hex[:8]}"
    git(work, "checkout", "-q", "-b", branch, "develop")
    env = dict(services_env)
    env["ODOOOPS_IMAGE_OVERRIDES"] = f"odoo:19.0={standin_image}"
    env["ODOOOPS_GIT_MIRRORS"] = f"https://github.com/OCA/web.git={(tmp_path / 'oca-web.git').as_uri()}"
    state = tmp_path / "state"
    host = HostSettings.from_env(state, env)
    world = {"work": work, "branch": branch, "host": host, "state": state, "tmp": tmp_path}
    yield world
    # Leave the shared services as found: destroy whatever this test's project still has.
    from reconciler.controller.apply import Applier
    from reconciler.controller.planning import Project
    from reconciler.core.model import Action, ActionKind

    project = Project.open(str(work), state_dir=state)
    applier = Applier(project, world["host"] if world["host"].docker_host == host.docker_host else host)
    for name, entry in project.store.entries().items():
        applier._destroy(Action(env=name, action=ActionKind.DESTROY, branch=entry.get("branch", ""),
                                tier=entry.get("tier"), reason="test cleanup", old_commit=entry.get("commit")))


