"""GET /api/v1/environments/{env}/credentials and `odooops env credentials`: scope, production needs admin,
every read audited (without the password), never cached; against a real PostgreSQL database."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest
from click.testing import CliRunner
from psycopg import sql

from reconciler.cli.main import main
from reconciler.data import admin_password as ap
from reconciler.executors.postgres import Postgres
from tests.api.conftest import ApiServer, all_scopes_but


def _odoo_like_db(pg: Postgres, name: str) -> None:
    with pg.connect() as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    with pg.connect(name) as conn:
        conn.execute("CREATE TABLE res_users (id serial PRIMARY KEY, login varchar NOT NULL, password varchar)")
        conn.execute("INSERT INTO res_users (id, login, password) VALUES (1, '__system__', NULL), "
                     "(2, 'admin', 'admin')")


@pytest.fixture
def envs(api: ApiServer) -> Iterator[dict[str, str]]:
    """A production and a staging environment whose databases got their platform admin passwords."""
    assert api.ctx.ops.host is not None
    pg = Postgres.from_host(api.ctx.ops.host)
    suffix = uuid.uuid4().hex[:8]
    names = {"production": f"prod-{suffix}", "staging": f"stg-{suffix}"}
    try:
        for tier, name in names.items():
            api.add_env(name, tier=tier)
            _odoo_like_db(pg, name)
            ap.ensure_admin_password(pg, api.ctx.ops.secret_store(), name)
        yield names
    finally:
        for name in names.values():
            api.remove_env(name)
            pg.drop(name)
            api.ctx.ops.secret_store().drop(name)


def _events(api: ApiServer, env: str) -> list[dict[str, object]]:
    return [e for e in api.ctx.audit.entries() if e["action"] == "env.credentials" and e["target"] == env]


def test_credentials_by_tier_and_role(api: ApiServer, envs: dict[str, str]) -> None:
    store = api.ctx.ops.secret_store()
    prod, stg = envs["production"], envs["staging"]
    passwords = {n: store.get(n, ap.SECRET_NAME) for n in (prod, stg)}
    assert None not in passwords.values() and passwords[prod] != passwords[stg]

    dev = api.token(role="developer", subject="dev@example.com")
    r = api.request("GET", f"/api/v1/environments/{stg}/credentials", token=dev)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body == {"env": stg, "url": f"http://{stg}.odooops.localhost", "database": stg, "login": "admin",
                    "password": passwords[stg], "set_in_database": True}
    assert r.headers["cache-control"] == "no-store"
    # A developer never reads production's; an admin does.
    r = api.request("GET", f"/api/v1/environments/{prod}/credentials", token=dev)
    assert r.status_code == 403 and r.json()["error"] == "PRODUCTION_ROLE_REQUIRED"
    assert passwords[prod] not in r.text
    r = api.request("GET", f"/api/v1/environments/{prod}/credentials", token=api.token(role="admin", subject="boss"))
    assert r.status_code == 200 and r.json()["password"] == passwords[prod]
    # The scope is needed, even for staging.
    no_scope = api.token(scopes=all_scopes_but("credentials:read"))
    assert api.request("GET", f"/api/v1/environments/{stg}/credentials", token=no_scope).status_code == 403
    assert api.request("GET", f"/api/v1/environments/{stg}/credentials",
                       token=api.token(role="tester")).status_code == 403

    # Every read is audited, refusals too; the password never reaches the audit trail.
    [ok_stg] = [e for e in _events(api, stg) if e["actor"] == "dev@example.com"]
    assert ok_stg["result"]["status"] == "ok"
    prod_events = {(e["actor"], json.dumps(e["result"])) for e in _events(api, prod)}
    assert ("dev@example.com", json.dumps("refused:PRODUCTION_ROLE_REQUIRED")) in prod_events
    assert any(actor == "boss" and '"ok"' in result for actor, result in prod_events)
    audit_text = (api.state / "audit" / "audit.jsonl").read_text()
    assert passwords[prod] not in audit_text and passwords[stg] not in audit_text


def test_environment_without_platform_password(api: ApiServer) -> None:
    name = api.add_env(tier="development")
    try:
        r = api.request("GET", f"/api/v1/environments/{name}/credentials")
        assert r.status_code == 409 and r.json()["error"] == "CREDENTIALS_NOT_DEPLOYED"
        assert f"odooops env redeploy {name}" in r.json()["remediation"]
    finally:
        api.remove_env(name)


def test_cli_env_credentials(api: ApiServer, envs: dict[str, str]) -> None:
    stg = envs["staging"]
    token = api.token(role="developer", subject="cli-dev@example.com")
    env = {"ODOOOPS_SERVER": api.url, "ODOOOPS_TOKEN": token}
    runner = CliRunner()
    result = runner.invoke(main, ["env", "credentials", stg, "--json"], env=env)
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["login"] == "admin" and data["password"] == api.ctx.ops.secret_store().get(stg, ap.SECRET_NAME)
    human = runner.invoke(main, ["env", "credentials", stg], env=env)
    assert human.exit_code == 0, human.output
    assert f"password  {data['password']}" in human.output and "login     admin" in human.output
    refused = runner.invoke(main, ["env", "credentials", envs["production"], "--json"], env=env)
    assert refused.exit_code != 0 and json.loads(refused.output)["error"] == "PRODUCTION_ROLE_REQUIRED"
    assert [e for e in _events(api, stg) if e["actor"] == "cli-dev@example.com"]
