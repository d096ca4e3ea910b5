"""`odooops plan --out` / `apply --plan-file` / `status` as a user runs them."""

from __future__ import annotations

import json
from typing import Any

import pytest
from click.testing import CliRunner

from reconciler.cli.main import main
from tests.example_repo import commit_file


def host_env(world: dict[str, Any]) -> dict[str, str]:
    h = world["host"]
    return {"ODOOOPS_STATE_DIR": str(world["state"]), "ODOOOPS_PG_HOST": h.pg_host, "ODOOOPS_PG_PORT": str(h.pg_port),
            "ODOOOPS_PG_USER": h.pg_admin_user, "ODOOOPS_PG_PASSWORD": h.pg_admin_password,
            "ODOOOPS_PG_HOST_FROM_CONTAINERS": h.pg_host_from_containers, "DOCKER_HOST": h.docker_host,
            "ODOOOPS_CADDY_ADMIN": h.caddy_admin, "ODOOOPS_ROUTER_HTTP": h.router_http,
            "ODOOOPS_IMAGE_OVERRIDES": ",".join(f"{k}={v}" for k, v in h.image_overrides.items()),
            "ODOOOPS_GIT_MIRRORS": ",".join(f"{k}={v}" for k, v in h.git_mirrors.items())}


def test_saved_plan_is_applied_only_while_it_matches(world: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in host_env(world).items():
        monkeypatch.setenv(k, v)
    runner = CliRunner()
    repo, plan_file = str(world["work"]), str(world["tmp"] / "plan.json")
    out = runner.invoke(main, ["plan", "--repo", repo, "--branch", world["branch"], "--out", plan_file])
    assert out.exit_code == 0, out.output
    commit_file(world["work"], world["branch"], "README.md", "moved on\n", "a newer commit")
    stale = runner.invoke(main, ["apply", "--plan-file", plan_file, "--branch", world["branch"], "--json"])
    assert stale.exit_code == 1
    err = json.loads(stale.output)
    assert err["error"] == "PLAN_STALE" and "odooops plan" in err["remediation"]
    runner.invoke(main, ["plan", "--repo", repo, "--branch", world["branch"], "--out", plan_file])
    done = runner.invoke(main, ["apply", "--plan-file", plan_file, "--branch", world["branch"], "--json"])
    assert done.exit_code == 0, done.output
    report = json.loads(done.output)
    assert report["ok"] and report["environments"][0]["result"] == "ok"
    env = report["environments"][0]["env"]
    status = runner.invoke(main, ["status", "--repo", repo, "--json"])
    [row] = [r for r in json.loads(status.output)["environments"] if r["env"] == env]
    assert row["state"] == "running" and row["runtime"] == "running"
    assert row["url"] == f"http://{env}.odooops.localhost" and row["commit"] == report["environments"][0]["commit"]
    again = runner.invoke(main, ["apply", "--repo", repo, "--branch", world["branch"], "--auto-approve"])
    assert again.exit_code == 0 and "Nothing to do" in again.output


def test_apply_without_confirmation_refuses_when_not_a_terminal(world: dict[str, Any],
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in host_env(world).items():
        monkeypatch.setenv(k, v)
    out = CliRunner().invoke(main, ["apply", "--repo", str(world["work"]), "--branch", world["branch"]])
    assert out.exit_code == 1 and "--auto-approve" in out.output
