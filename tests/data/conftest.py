"""Shared fixtures of the data-layer tests: a Postgres executor, throwaway roles and databases, a DataContext."""

from __future__ import annotations

import hashlib
import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from reconciler.data.context import DataContext
from reconciler.executors.docker_runtime import DockerRuntime, RunResult
from reconciler.executors.postgres import Postgres
from reconciler.platform.host import HostSettings
from reconciler.platform.state_store import StateStore
from reconciler.secrets import SecretStore


def env_name(prefix: str = "t") -> str:
    """A unique environment-style name (DNS label: [a-z0-9-]), also a database and role name."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="session")
def pg(pg_conn_params: dict[str, Any]) -> Postgres:
    """The platform's PostgreSQL executor on the shared server (superuser)."""
    p = pg_conn_params
    return Postgres(p["host"], int(p["port"]), p["user"], p["password"])


@pytest.fixture(scope="module")
def make_role(pg: Postgres) -> Iterator[Callable[[str], str]]:
    """make_role(prefix) -> a new LOGIN role (password = its name); it and the databases it owns are dropped."""
    made: list[str] = []

    def make(prefix: str = "r") -> str:
        name = env_name(prefix)
        with pg.connect() as conn:
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(name),
                                                                           sql.Literal(name)))
        made.append(name)
        return name

    yield make
    with pg.connect() as conn:
        for db in conn.execute("SELECT datname FROM pg_database d JOIN pg_roles r ON r.oid = d.datdba "
                               "WHERE r.rolname = ANY(%s)", (made,)).fetchall():
            pg.drop(db[0])
    with pg.connect() as conn:
        for role in made:
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


@pytest.fixture()
def make_db(pg: Postgres) -> Iterator[Callable[..., str]]:
    """make_db(prefix, owner=None) -> a new empty database, dropped (FORCE) at the end of the test."""
    made: list[str] = []

    def make(prefix: str = "d", owner: str | None = None) -> str:
        name = env_name(prefix)
        stmt = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if owner:
            stmt += sql.SQL(" OWNER {}").format(sql.Identifier(owner))
        with pg.connect() as conn:
            conn.execute(stmt)
        made.append(name)
        return name

    yield make
    for name in made:
        pg.drop(name)


@pytest.fixture()
def scratch_dbs(pg: Postgres) -> Iterator[list[str]]:
    """Names a test expects to be created (e.g. clone targets): dropped at the end whatever happened."""
    names: list[str] = []
    yield names
    for name in names:
        pg.drop(name)


def data_context(state: Path, services_env: dict[str, str], pg: Postgres) -> DataContext:
    """A DataContext on a private state directory (own secret key, state file and filestore root)."""
    host = HostSettings.from_env(state, services_env)
    secrets = SecretStore(state / "secrets", key_file=state.parent / f"{state.name}-secret.key")
    return DataContext(host=host, pg=pg, secrets=secrets, runtime=DockerRuntime(host.docker_host),
                       store=StateStore(state / "state.json"), project_id="test-" + state.name)


@pytest.fixture()
def ctx(tmp_path: Path, services_env: dict[str, str], pg: Postgres) -> DataContext:
    return data_context(tmp_path / "state", services_env, pg)


def standin_runner(docker_client: Any, image: str, pg_params: dict[str, Any], pg_host: str,
                   role: str) -> Callable[[list[str]], RunResult]:
    """run_odoo for an environment that is not deployed: the Odoo image with the role's credentials,
    exactly as the official image takes them (HOST/PORT/USER/PASSWORD)."""

    def run(cmd: list[str]) -> RunResult:
        started = time.monotonic()
        container = docker_client.containers.create(
            image, command=cmd, init=True, labels={"odooops.test": role},
            environment={"HOST": pg_host, "PORT": str(pg_params["port"]), "USER": role, "PASSWORD": role})
        try:
            container.start()
            code = int(container.wait(timeout=300)["StatusCode"])
            logs = container.logs().decode("utf-8", "replace")
        finally:
            container.remove(force=True)
        return RunResult(container.name, code, False, logs, time.monotonic() - started)

    return run


PERSONAL = {
    "names": ["Margaret Hamilton", "Grace Hopper", "Ada Lovelace"],
    "emails": ["margaret@apollo.example.com", "grace.hopper@navy.example.org", "ada@engine.example.net"],
    "phones": ["+1 (617) 555-0101", "+1 202-555-0199", "+44 20 7946 0958"],
    "streets": ["1 Memory Lane", "42 Compiler Road", "7 Analytical Street"],
    "cities": ["Cambridge", "Arlington", "London"],
    "zips": ["02139", "22201", "NW1 6XE"],
    "vats": ["US123456789", "US987654321", "GB123456789"],
    "ibans": ["GB82 WEST 1234 5698 7654 32", "DE89 3704 0044 0532 0130 00", "FR14 2004 1010 0505 0001 3M02 606"],
    "cards": ["4111-1111-1111-1111", "5500-0000-0000-0004", "3400-0000-0000-009"],
}


def fill_production(conn: psycopg.Connection[Any], filestore: Path) -> None:
    """Personal data, secrets and live outgoing things in a database made by `odoo -i`, plus attachments."""
    p = PERSONAL
    for i in range(3):
        pid = conn.execute(
            "INSERT INTO res_partner (name, display_name, email, phone, street, street2, zip, city, vat, website, "
            "comment) VALUES (%s, %s, %s, %s, %s, 'Suite 1', %s, %s, %s, 'https://apollo.example.com', "
            "'Prefers calls') RETURNING id",
            (p["names"][i], p["names"][i], p["emails"][i], p["phones"][i], p["streets"][i], p["zips"][i],
             p["cities"][i], p["vats"][i])).fetchone()[0]
        conn.execute("INSERT INTO res_partner_bank (acc_number, sanitized_acc_number, acc_holder_name, partner_id) "
                     "VALUES (%s, %s, %s, %s)", (p["ibans"][i], p["ibans"][i].replace(" ", ""), p["names"][i], pid))
        uid = conn.execute("INSERT INTO res_users (login, password, partner_id, signature, totp_secret) "
                           "VALUES (%s, '$pbkdf2-sha512$600000$secret', %s, %s, 'TOTPSECRET') RETURNING id",
                           (p["emails"][i], pid, f"-- {p['names'][i]}")).fetchone()[0]
        conn.execute("INSERT INTO res_users_apikeys (name, user_id, index, key) VALUES ('ci', %s, 'abcd1234', "
                     "'$pbkdf2$apikey')", (uid,))
        conn.execute("INSERT INTO auth_passkey_key (name, credential_identifier, public_key, create_uid) "
                     "VALUES ('laptop', 'cred', 'pk', %s)", (uid,))
        mid = conn.execute("INSERT INTO mail_message (subject, body, email_from, author_id) VALUES "
                           "(%s, %s, %s, %s) RETURNING id",
                           (f"Order for {p['names'][i]}", f"<p>Call me at {p['phones'][i]}</p>",
                            f'"{p["names"][i]}" <{p["emails"][i]}>', pid)).fetchone()[0]
        conn.execute("INSERT INTO mail_mail (mail_message_id, body_html, email_to) VALUES (%s, %s, %s)",
                     (mid, f"<p>Dear {p['names'][i]}</p>", p["emails"][i]))
        conn.execute("INSERT INTO mail_tracking_value (mail_message_id, old_value_char, new_value_char) "
                     "VALUES (%s, %s, %s)", (mid, p["phones"][i], p["cities"][i]))
        conn.execute("INSERT INTO x_loyalty_card (partner_id, card_no) VALUES (%s, %s)", (pid, p["cards"][i]))
    conn.execute("INSERT INTO ir_mail_server (name, smtp_host, smtp_port, smtp_user, smtp_pass, active) "
                 "VALUES ('Production relay', 'smtp.example.com', 587, 'relay', 'relay-password', true)")
    conn.execute("INSERT INTO ir_cron (cron_name, active) VALUES ('Send invoices', true)")
    conn.execute("INSERT INTO base_automation (name, model_name, active) VALUES ('Notify sales', 'sale.order', true)")
    conn.execute("INSERT INTO iap_account (service_name, account_token) VALUES ('sms', 'iap-token-secret')")
    conn.execute("INSERT INTO ir_config_parameter (key, value) VALUES ('web.base.url', 'https://erp.example.com') "
                 "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value")
    for i, (mimetype, data) in enumerate((("image/png", b"\x89PNG photo of " + p["names"][0].encode()),
                                          ("application/pdf", b"%PDF contract of " + p["names"][1].encode()))):
        sha1 = hashlib.sha1(data).hexdigest()
        path = filestore / sha1[:2] / sha1
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        for item in (path, path.parent):
            os.chown(item, 101, 101)
        conn.execute("INSERT INTO ir_attachment (name, res_model, res_id, type, store_fname, file_size, checksum, "
                     "mimetype) VALUES (%s, 'res.partner', 1, 'binary', %s, %s, %s, %s)",
                     (f"doc{i}", f"{sha1[:2]}/{sha1}", len(data), sha1, mimetype))
    os.chown(filestore, 101, 101)


@pytest.fixture(scope="module")
def production(tmp_path_factory: pytest.TempPathFactory, services_env: dict[str, str], pg: Postgres,
               make_role: Callable[[str], str], docker_client: Any, standin_image: str,
               pg_conn_params: dict[str, Any], pg_host_from_containers: str) -> Iterator[dict[str, Any]]:
    """A "production" environment as the platform makes one: a role and its database (as Terraform does),
    initialised by the Odoo image with mail, contacts, TOTP, passkeys, automation and IAP, filled with
    personal data and attachments; plus a "staging" role to clone into and a DataContext."""
    state = tmp_path_factory.mktemp("data") / "state"
    ctx = data_context(state, services_env, pg)
    prod, stage = make_role("prod"), make_role("stage")
    with pg.connect() as conn:
        conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(prod), sql.Identifier(prod)))
    run_prod = standin_runner(docker_client, standin_image, pg_conn_params, pg_host_from_containers, prod)
    init = run_prod(["odoo", "-d", prod, "-i", "contacts,mail,auth_totp,auth_passkey,base_automation,iap",
                     "--stop-after-init"])
    assert init.ok, init.logs
    filestore = ctx.host.filestore_dir(prod)
    filestore.mkdir(parents=True)
    with psycopg.connect(dbname=prod, autocommit=True, **{**pg_conn_params, "user": prod, "password": prod}) as c:
        # A custom module's table, masked by a project rule from .odooops.yaml.
        c.execute("CREATE TABLE x_loyalty_card (id serial PRIMARY KEY, partner_id integer, card_no varchar(24))")
        with c.transaction():
            fill_production(c, filestore)
    yield {"env": prod, "stage": stage, "ctx": ctx, "state": state, "filestore": filestore,
           "run_stage": standin_runner(docker_client, standin_image, pg_conn_params, pg_host_from_containers,
                                       stage),
           "run_prod": run_prod}
    for db in pg.list_databases("oo_clone_"):
        with pg.connect() as conn:
            row = conn.execute("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s", (db,)).fetchone()
        if row and row[0] == stage:
            pg.drop(db)
    pg.drop(prod)
