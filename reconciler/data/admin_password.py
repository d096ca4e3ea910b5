"""The admin user's password of an environment's Odoo database: the platform's, from the encrypted store.

A new Odoo database lets anyone in as `admin`/`admin`, and a clone empties every user's password. The
platform sets the admin user's password itself, directly in the database, with the hash Odoo's own
CryptContext writes (passlib's pbkdf2_sha512: `$pbkdf2-sha512$<rounds>$<salt>$<checksum>`, adapted
base64, at least Odoo's 600,000 rounds). Each environment has its own value (`admin_password`), never
production's on a copy, and distinct from the database manager's master password (`admin_passwd`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from reconciler.errors import OdooOpsError

if TYPE_CHECKING:
    from reconciler.executors.postgres import Postgres
    from reconciler.executors.sql import Connection
    from reconciler.secrets import SecretStore

SECRET_NAME = "admin_password"
# The hash last written (`<sha256 of the password>:<hash>`), to tell "already the platform's" from
# "changed since" (in Odoo, or the stored password itself) without a KDF run.
HASH_NAME = "admin_password_hash"
# odoo/addons/base/models/res_users.py (17.0-19.0): MIN_ROUNDS = 600_000, raised by the
# `password.hashing.rounds` system parameter, never lowered.
ODOO_MIN_ROUNDS = 600_000
SALT_BYTES = 16  # passlib's pbkdf2_sha512 default salt size
_PREFIX = "$pbkdf2-sha512$"
# Odoo's default password and the ones a person would try first: never the platform's.
WEAK = frozenset({"", "admin", "odoo", "password"})


def _ab64_encode(raw: bytes) -> str:
    """passlib's adapted base64: '+' becomes '.', no padding."""
    return base64.b64encode(raw).decode("ascii").rstrip("=").replace("+", ".")


def _ab64_decode(text: str) -> bytes:
    text = text.replace(".", "+")
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


def odoo_hash(password: str, rounds: int = ODOO_MIN_ROUNDS, salt: bytes | None = None) -> str:
    """The value Odoo stores in res_users.password for `password` (what passlib's pbkdf2_sha512.hash gives)."""
    if rounds < 1:
        raise ValueError("rounds must be positive")
    salt = os.urandom(SALT_BYTES) if salt is None else salt
    checksum = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, rounds)
    return f"{_PREFIX}{rounds}${_ab64_encode(salt)}${_ab64_encode(checksum)}"


def verify(password: str, hashed: str) -> bool:
    """True when `hashed` (pbkdf2_sha512 format) is a hash of `password`."""
    if not hashed.startswith(_PREFIX):
        return False
    try:
        rounds_text, salt_text, checksum_text = hashed[len(_PREFIX):].split("$")
        rounds, salt, checksum = int(rounds_text), _ab64_decode(salt_text), _ab64_decode(checksum_text)
    except ValueError:
        return False
    got = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, rounds)
    return hmac.compare_digest(got, checksum)


@dataclass(frozen=True)
class AdminUser:
    id: int
    login: str
    password_hash: str | None


def admin_user(conn: Connection) -> AdminUser | None:
    """Odoo's `base.user_admin` (id 2 in every database Odoo creates); None when there is no res_users."""
    if conn.execute("SELECT to_regclass('public.res_users')").fetchone() == (None,):
        return None
    row = None
    if conn.execute("SELECT to_regclass('public.ir_model_data')").fetchone() != (None,):
        row = conn.execute("SELECT u.id, u.login, u.password FROM ir_model_data d JOIN res_users u ON u.id = d.res_id "
                           "WHERE d.module = 'base' AND d.name = 'user_admin' AND d.model = 'res.users'").fetchone()
    if row is None:
        row = conn.execute("SELECT id, login, password FROM res_users WHERE id = 2").fetchone()
    return AdminUser(int(row[0]), str(row[1]), row[2]) if row is not None else None


def hashing_rounds(conn: Connection) -> int:
    """What Odoo's CryptContext uses: max(600,000, the `password.hashing.rounds` system parameter)."""
    row = conn.execute("SELECT value FROM ir_config_parameter WHERE key = 'password.hashing.rounds'").fetchone() \
        if conn.execute("SELECT to_regclass('public.ir_config_parameter')").fetchone() != (None,) else None
    try:
        configured = int(row[0]) if row and row[0] else 0
    except ValueError:
        configured = 0
    return max(ODOO_MIN_ROUNDS, configured)


def env_password(secrets: SecretStore, env: str) -> str:
    """The environment's admin password from the encrypted store (made on first use); never a weak one."""
    password = secrets.get_or_create(env, SECRET_NAME)
    if password.strip().lower() in WEAK or len(password) < 12:
        raise OdooOpsError(
            "ADMIN_PASSWORD_WEAK", f"the stored admin password of {env} is too weak (Odoo's default, or under 12 "
            "characters)", f"odooops secrets set {env} admin_password  # a long random value, or remove it so the "
            "platform makes one", {"env": env})
    return password


def _fingerprint(password: str) -> str:
    return hashlib.sha256(password.encode("utf-8")).hexdigest()


def written_hash(secrets_values: dict[str, str], password: str) -> str | None:
    """The hash last written into the database for this very password; None when it was for another one."""
    fingerprint, _, hashed = (secrets_values.get(HASH_NAME) or "").partition(":")
    return hashed if hashed and hmac.compare_digest(fingerprint, _fingerprint(password)) else None


@dataclass(frozen=True)
class AdminPasswordResult:
    env: str
    database: str
    login: str
    changed: bool  # False: the database already held the platform's password

    def as_dict(self) -> dict[str, Any]:
        return {"env": self.env, "database": self.database, "login": self.login, "changed": self.changed}


def set_in(conn: Connection, password: str, *, known_hash: str | None = None,
           env: str = "", database: str = "") -> tuple[AdminUser, str | None]:
    """Set the admin user's password in an open connection; returns (user, the new hash or None when
    the stored hash already is `known_hash`)."""
    user = admin_user(conn)
    if user is None:
        raise OdooOpsError(
            "ADMIN_USER_MISSING", f"database {database or '?'} of {env or '?'} has no Odoo admin user "
            "(res_users id 2 / base.user_admin)", "is it an Odoo database? odooops status " + (env or "ENV"),
            {"env": env, "database": database})
    if known_hash is not None and user.password_hash == known_hash:
        return user, None
    hashed = odoo_hash(password, hashing_rounds(conn))
    conn.execute("UPDATE res_users SET password = %s WHERE id = %s", (hashed, user.id))
    return user, hashed


def ensure_admin_password(pg: Postgres, secrets: SecretStore, env: str, database: str | None = None) -> \
        AdminPasswordResult:
    """Give the admin user of `database` (default: the env's own) the env's platform password.

    Cheap when nothing changed: the hash in the database is compared with the one last written for this
    password. A database that holds anything else (a fresh init's `admin`, a clone's emptied password, a
    restored backup, a password changed by hand) gets the platform's password again, and so does every
    database after the stored password was replaced (`odooops secrets set ENV admin_password`)."""
    db = database or env
    password = env_password(secrets, env)
    known = written_hash(secrets.values(env), password)
    with pg.connect(db) as conn, conn.transaction():
        user, hashed = set_in(conn, password, known_hash=known, env=env, database=db)
    if hashed is not None:
        secrets.set(env, HASH_NAME, f"{_fingerprint(password)}:{hashed}")
    return AdminPasswordResult(env, db, user.login, hashed is not None)




def credentials(pg: Postgres, secrets: SecretStore, env: str) -> dict[str, Any]:
    """The admin login and password of an env, and whether its database holds that password now
    (the hash last written is still there: nobody changed it since)."""
    stored = secrets.values(env)
    password = stored.get(SECRET_NAME)
    if password is None:
        raise OdooOpsError(
            "CREDENTIALS_NOT_DEPLOYED", f"{env} has no platform admin password yet (deployed by an older "
            "release, or not deployed yet)", f"odooops env redeploy {env}  # the database step sets it",
            {"env": env})
    with pg.connect(env) as conn:
        user = admin_user(conn)
    if user is None:
        raise OdooOpsError("ADMIN_USER_MISSING", f"database {env} has no Odoo admin user",
                           f"odooops status {env}  # is the database initialised?", {"env": env})
    return {"env": env, "database": env, "login": user.login, "password": password,
            "set_in_database": user.password_hash is not None
            and user.password_hash == written_hash(stored, password)}
