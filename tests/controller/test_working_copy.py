"""Deploys of tiers that run tests update and test a working copy of the environment's database: a
refused commit leaves the live database as it was, a passing one is swapped in as the new version
starts, and what to update is read from the database itself (stand-in Odoo; tests/realodoo/ proves
the same on real Odoo)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import psycopg
import pytest

from reconciler.controller.apply import Applier
from reconciler.controller.modules import DIGESTS_KEY, read_database
from reconciler.controller.planning import Project, compute_plan
from reconciler.core.model import ActionKind
from tests.example_repo import commit_file, git

pytestmark = pytest.mark.integration


def apply(world: dict[str, Any]) -> tuple[Any, Any]:
    project = Project.open(str(world["work"]), state_dir=world["state"])
    outcome = compute_plan(project, branches=[world["branch"]])
    return outcome, Applier(project, world["host"]).apply(outcome)


def connect(world: dict[str, Any], db: str) -> psycopg.Connection[Any]:
    host = world["host"]
    return psycopg.connect(host=host.pg_host, port=host.pg_port, user=host.pg_admin_user,
                           password=host.pg_admin_password, dbname=db, autocommit=True)


def module_row(world: dict[str, Any], env: str, name: str) -> tuple[Any, ...]:
    with connect(world, env) as conn:
        row = conn.execute("SELECT state, latest_version, write_date FROM ir_module_module WHERE name = %s",
                           (name,)).fetchone()
    assert row is not None
    return tuple(row)


def scratch_left(world: dict[str, Any], env: str) -> list[str]:
    """Working copies or set-aside databases of env still around (databases and filestore dirs)."""
    with connect(world, "postgres") as conn:
        dbs = [r[0] for r in conn.execute(
            "SELECT datname FROM pg_database WHERE datname ~ '^oo_(clone|old)_' AND pg_get_userbyid(datdba) = %s",
            (env,)).fetchall()]
    dirs = [p.name for p in (world["host"].filestore_root / env / "filestore").glob("*oo_*")]
    return dbs + dirs


def health(world: dict[str, Any], env: str) -> int:
    return httpx.get(f"{world['host'].router_http}/web/health", headers={"Host": f"{env}.odooops.localhost"},
                     timeout=30).status_code


def test_refused_commit_leaves_live_database_and_fix_is_swapped_in(world: dict[str, Any]) -> None:
    outcome, report = apply(world)
    [env] = [a.env for a in outcome.plan.actions if a.action is ActionKind.CREATE]
    assert report.ok, json.dumps(report.to_json(), indent=1)
    first_commit = report.environments[0].commit
    with connect(world, env) as conn:
        digests = read_database(conn).digests
    assert {"acme_sale", "acme_website"} <= set(digests)  # recorded by the schema gate after the install
    before = module_row(world, env, "acme_sale")

    # A new version of acme_sale whose tests fail: refused, and the live database never saw the update.
    from examples.build_example_repo import sale_manifest
    commit_file(world["work"], world["branch"], "addons/acme_sale/__manifest__.py", sale_manifest("19.0.1.7.0"),
                "acme_sale 1.7")
    commit_file(world["work"], world["branch"], "addons/acme_sale/tests/FAIL_TESTS", "broken on purpose\n",
                "break tests")
    _, refused = apply(world)
    [rep] = refused.environments
    assert rep.result == "failed" and rep.error["error"] == "TESTS_FAILED", rep.to_json()
    database = next(s for s in rep.steps if s.name == "database")
    assert "working copy" in database.detail and "updated acme_sale" in database.detail, database.detail
    assert module_row(world, env, "acme_sale") == before  # same version, not even written
    with connect(world, env) as conn:
        assert read_database(conn).digests == digests
    assert scratch_left(world, env) == []  # the refused copy is gone
    assert health(world, env) == 200  # the old version keeps serving
    web = Applier(Project.open(str(world["work"]), state_dir=world["state"]), world["host"]).runtime
    assert web.observe_env(env).container("web").commit == first_commit

    # The fix: the same update passes on a new copy, which becomes the live database.
    git(world["work"], "rm", "-q", "addons/acme_sale/tests/FAIL_TESTS")
    git(world["work"], "commit", "-q", "-m", "fix tests")
    _, fixed = apply(world)
    [rep2] = fixed.environments
    assert rep2.result == "ok", json.dumps(rep2.to_json(), indent=1)
    assert rep2.modules == {"install": [], "update": ["acme_sale"], "removed": []}
    runtime = next(s for s in rep2.steps if s.name == "runtime")
    assert "swapped in" in runtime.detail, runtime.detail
    state, version, _written = module_row(world, env, "acme_sale")
    assert (state, version) == ("installed", "19.0.1.7.0")
    with connect(world, env) as conn:
        assert read_database(conn).digests["acme_sale"] != digests["acme_sale"]
    assert scratch_left(world, env) == []  # the set-aside live data went once the new version was healthy
    assert health(world, env) == 200


def test_what_to_update_comes_from_the_database(world: dict[str, Any]) -> None:
    outcome, report = apply(world)
    [env] = [a.env for a in outcome.plan.actions if a.action is ActionKind.CREATE]
    assert report.ok, json.dumps(report.to_json(), indent=1)
    # The database says acme_website is at other code (as after an interrupted deploy): a commit that
    # changes no module still updates it. (Updates left `to upgrade`: tests/realodoo/test_deploys.py.)
    with connect(world, env) as conn:
        stored = json.loads(conn.execute("SELECT value FROM ir_config_parameter WHERE key = %s",
                                         (DIGESTS_KEY,)).fetchone()[0])
        stored["acme_website"] = "0" * 40
        conn.execute("UPDATE ir_config_parameter SET value = %s WHERE key = %s", (json.dumps(stored), DIGESTS_KEY))
    commit_file(world["work"], world["branch"], "NOTES.md", "not a module\n", "notes")
    _, report2 = apply(world)
    [rep] = report2.environments
    assert rep.result == "ok", json.dumps(rep.to_json(), indent=1)
    assert rep.modules == {"install": [], "update": ["acme_website"], "removed": []}
    with connect(world, env) as conn:
        assert read_database(conn).digests["acme_website"] != "0" * 40
    # nothing differs now: the next commit updates nothing, and its tests run on a copy that is dropped
    commit_file(world["work"], world["branch"], "NOTES.md", "still not a module\n", "notes 2")
    _, report3 = apply(world)
    [rep3] = report3.environments
    assert rep3.result == "ok" and rep3.modules == {"install": [], "update": [], "removed": []}
    assert scratch_left(world, env) == []
