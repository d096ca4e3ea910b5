"""Which database login an environment's next version uses, and which passwords Terraform sets.

Every environment has two logins (ADR 0015): its own role and a rotation login that acts as the
role. A rotation of `db_password` keeps the value in use as `db_password.previous`; the next deploy
then gives the new password to the *other* login, so the running version keeps logging in while its
replacement starts. Once the replacement serves, the previous login is disabled and the previous
password discarded. Between any two steps a crash leaves a state the next deploy repeats.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from reconciler.core.naming import other_login, rotation_login
from reconciler.secrets import SecretStore, previous_name

DB_PASSWORD = "db_password"
PREVIOUS = previous_name(DB_PASSWORD)


@dataclass(frozen=True)
class DbLogins:
    env: str
    active: str  # the login the new version's odoo.conf names
    password: str  # its password
    retiring: str | None  # the login the running version uses until the handover is done
    retiring_password: str | None

    def terraform_vars(self, *, retired: bool = False) -> dict[str, str | None]:
        """role_password / login_password for the module; None disables that login (NOLOGIN)."""
        by_login = {self.active: self.password}
        if self.retiring and self.retiring_password and not retired:
            by_login[self.retiring] = self.retiring_password
        return {"role_password": by_login.get(self.env), "login_password": by_login.get(rotation_login(self.env))}


def db_logins(store: SecretStore, env: str, previous: dict[str, Any], *, placeholder: str | None = None) -> DbLogins:
    """From the secret store and the env's state entry (`db_login`: what its containers use now).

    placeholder: read only (plan --infra): an env without a password yet gets this one in the result."""
    stored = store.values(env)  # one decryption for both values
    password = stored.get(DB_PASSWORD) or (placeholder if placeholder is not None
                                           else store.get_or_create(env, DB_PASSWORD))
    prior = stored.get(PREVIOUS)
    current = str(previous.get("db_login") or env)
    if prior is not None and previous.get("container_spec"):
        return DbLogins(env, other_login(env, current), password, current, prior)
    return DbLogins(env, current, password, None, None)
