"""The admin user's password: passlib's pbkdf2_sha512 format, set in a real PostgreSQL database, per env."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from typing import Any

import pytest

from reconciler.data import admin_password as ap
from reconciler.data.context import DataContext
from reconciler.errors import OdooOpsError
from reconciler.executors.postgres import Postgres

FAST = 1000  # rounds for format tests; the database path always uses Odoo's minimum


def test_hash_format_is_passlibs_pbkdf2_sha512() -> None:
    salt = bytes(range(16))
    hashed = ap.odoo_hash("s3cret-pass", rounds=FAST, salt=salt)
    scheme, rounds, salt_text, checksum_text = hashed.split("$")[1:]
    assert scheme == "pbkdf2-sha512" and rounds == str(FAST)
    # passlib's adapted base64: no padding, '.' instead of '+', 16-byte salt and 64-byte checksum.
    assert "=" not in hashed and "+" not in hashed
    assert ap._ab64_decode(salt_text) == salt
    expected = hashlib.pbkdf2_hmac("sha512", b"s3cret-pass", salt, FAST)
    assert ap._ab64_decode(checksum_text) == expected and len(expected) == 64
    assert checksum_text == base64.b64encode(expected).decode().rstrip("=").replace("+", ".")


def test_hash_verifies_and_salts_differ() -> None:
    a, b = ap.odoo_hash("pw-123456789", rounds=FAST), ap.odoo_hash("pw-123456789", rounds=FAST)
    assert a != b  # a fresh salt each time
    assert ap.verify("pw-123456789", a) and ap.verify("pw-123456789", b)
    assert not ap.verify("admin", a) and not ap.verify("pw-123456789", "admin")
    assert not ap.verify("x", "$pbkdf2-sha512$10$not-base64!$x")


def test_default_rounds_are_odoos_minimum() -> None:
    assert ap.odoo_hash("x", salt=b"0" * 16).split("$")[2] == "600000"


def _odoo_like(pg: Postgres, db: str, admin_hash: str = "admin", rounds: str | None = None) -> None:
    """The tables Odoo keeps the admin user in, as Odoo creates them."""
    with pg.connect(db) as conn:
        conn.execute("CREATE TABLE res_users (id serial PRIMARY KEY, login varchar NOT NULL, password varchar)")
        conn.execute("CREATE TABLE ir_model_data (id serial PRIMARY KEY, module varchar, name varchar, "
                     "model varchar, res_id integer)")
        conn.execute("CREATE TABLE ir_config_parameter (id serial PRIMARY KEY, key varchar, value text)")
        conn.execute("INSERT INTO res_users (id, login, password) VALUES (1, '__system__', NULL), "
                     "(2, 'admin', %s), (3, 'demo', 'demo')", (admin_hash,))
        conn.execute("INSERT INTO ir_model_data (module, name, model, res_id) VALUES "
                     "('base', 'user_root', 'res.users', 1), ('base', 'user_admin', 'res.users', 2)")
        if rounds:
            conn.execute("INSERT INTO ir_config_parameter (key, value) VALUES ('password.hashing.rounds', %s)",
                         (rounds,))


def _stored(pg: Postgres, db: str, uid: int = 2) -> Any:
    with pg.connect(db) as conn:
        return conn.execute("SELECT login, password FROM res_users WHERE id = %s", (uid,)).fetchone()


def test_ensure_sets_a_per_env_password_once(ctx: DataContext, pg: Postgres,
                                             make_db: Callable[..., str]) -> None:
    prod, staging = make_db("prod"), make_db("stg")
    for db in (prod, staging):
        _odoo_like(pg, db)
    first = ap.ensure_admin_password(pg, ctx.secrets, prod)
    assert first.changed and first.login == "admin" and first.database == prod
    password = ctx.secrets.get(prod, ap.SECRET_NAME)
    assert password and password != "admin" and len(password) >= 32
    login, hashed = _stored(pg, prod)
    assert login == "admin"
    assert ap.verify(password, hashed) and not ap.verify("admin", hashed)
    assert hashed.split("$")[2] == str(ap.ODOO_MIN_ROUNDS)
    assert _stored(pg, prod, 3)[1] == "demo"  # only the admin user is touched
    # Nothing changed: no second KDF run, the stored hash stays.
    assert not ap.ensure_admin_password(pg, ctx.secrets, prod).changed
    assert _stored(pg, prod)[1] == hashed
    # Another env (a clone of production carries production's hash): its own password, never production's.
    with pg.connect(staging) as conn:
        conn.execute("UPDATE res_users SET password = %s WHERE id = 2", (hashed,))
    assert ap.ensure_admin_password(pg, ctx.secrets, staging).changed
    other = ctx.secrets.get(staging, ap.SECRET_NAME)
    assert other and other != password
    assert ap.verify(other, _stored(pg, staging)[1]) and not ap.verify(password, _stored(pg, staging)[1])
    # Changed behind the platform's back (a restore, a password set by hand): set again.
    with pg.connect(prod) as conn:
        conn.execute("UPDATE res_users SET password = NULL WHERE id = 2")
    assert ap.ensure_admin_password(pg, ctx.secrets, prod).changed
    assert ap.verify(password, _stored(pg, prod)[1])
    # A new password in the store (secrets set): the next ensure writes it, though the database kept
    # the hash last written.
    ctx.secrets.set(prod, ap.SECRET_NAME, "a-new-password-chosen-by-ops")
    assert not ap.credentials(pg, ctx.secrets, prod)["set_in_database"]
    assert ap.ensure_admin_password(pg, ctx.secrets, prod).changed
    assert ap.verify("a-new-password-chosen-by-ops", _stored(pg, prod)[1])
    password = "a-new-password-chosen-by-ops"
    creds = ap.credentials(pg, ctx.secrets, prod)
    assert creds["login"] == "admin" and creds["password"] == password and creds["set_in_database"]


def test_ensure_into_another_database_and_rounds_parameter(ctx: DataContext, pg: Postgres,
                                                           make_db: Callable[..., str]) -> None:
    env, scratch = make_db("env"), make_db("scratch")
    _odoo_like(pg, scratch, admin_hash="", rounds="700000")
    with pg.connect(scratch) as conn:
        conn.execute("UPDATE res_users SET login = 'boss@example.com' WHERE id = 2")
    result = ap.ensure_admin_password(pg, ctx.secrets, env, scratch)
    assert result.changed and result.login == "boss@example.com" and result.database == scratch
    hashed = _stored(pg, scratch)[1]
    assert hashed.split("$")[2] == "700000"  # Odoo's max(600000, password.hashing.rounds)
    assert ap.verify(str(ctx.secrets.get(env, ap.SECRET_NAME)), hashed)


def test_weak_stored_password_and_missing_admin_are_refused(ctx: DataContext, pg: Postgres,
                                                            make_db: Callable[..., str]) -> None:
    db = make_db("weak")
    _odoo_like(pg, db)
    ctx.secrets.set(db, ap.SECRET_NAME, "admin")
    with pytest.raises(OdooOpsError) as err:
        ap.ensure_admin_password(pg, ctx.secrets, db)
    assert err.value.code == "ADMIN_PASSWORD_WEAK" and "admin_password" in err.value.remediation
    empty = make_db("empty")
    with pytest.raises(OdooOpsError) as err:
        ap.ensure_admin_password(pg, ctx.secrets, empty)
    assert err.value.code == "ADMIN_USER_MISSING"
    with pytest.raises(OdooOpsError) as err:
        ap.credentials(pg, ctx.secrets, make_db("never"))
    assert err.value.code == "CREDENTIALS_NOT_DEPLOYED"
