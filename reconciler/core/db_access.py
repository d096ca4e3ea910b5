"""Who may reach which of the platform's databases: the rule the access sweep checks, as pure data.

An environment's database is named after the environment, and so is its role (core.naming, render):
the role owns it and is the only grantee. A template or production snapshot (`oo_tpl_*`) belongs to the
platform's admin role alone. Any other `oo_*` database is a scratch copy of a data operation, owned by
the environment it is made for, which is its only grantee. PUBLIC never holds a privilege on any of them.
Databases the platform does not know are not judged.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

PUBLIC = ""  # aclexplode's grantee 0 (every role); no role can be named "" in PostgreSQL
PLATFORM_PREFIX = "oo_"
TEMPLATE_PREFIX = "oo_tpl_"


@dataclass(frozen=True)
class DatabaseAccess:
    """A database as the catalogue shows it: its owner and every grantee's privileges on it."""

    name: str
    owner: str
    grants: Mapping[str, tuple[str, ...]]  # grantee (PUBLIC = "") -> privileges, e.g. ("CONNECT", "TEMPORARY")


def intended_role(db: DatabaseAccess, envs: Collection[str], admin: str) -> str | None:
    """The one role that should own `db` and may connect to it; None for a database the platform does not own."""
    if db.name in envs:
        return db.name
    if db.name.startswith(TEMPLATE_PREFIX):
        return admin
    if db.name.startswith(PLATFORM_PREFIX):
        return db.owner
    return None


def access_problems(db: DatabaseAccess, role: str) -> list[str]:
    """What is wrong with `db`'s access for `role` (its intended role), in words; [] when nothing is."""
    problems = []
    if db.owner != role:
        problems.append(f"owned by {db.owner}, not {role}")
    for grantee, privileges in sorted(db.grants.items()):
        if grantee == PUBLIC:
            problems.append(f"PUBLIC (every role) may {', '.join(privileges)}")
        elif grantee not in (role, db.owner):
            problems.append(f"role {grantee} may {', '.join(privileges)}")
    return problems
