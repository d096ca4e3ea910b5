"""The access sweep: find the platform's databases that roles other than their own may reach, and repair them.

Every database the platform makes is secured when it is made (Postgres.create, Postgres.clone,
secure_database); this sweep catches what changed behind the platform's back (a GRANT by hand, a database
restored by a tool that knows nothing of the rule) and what older versions left. The rule itself is
core.db_access. The daemon runs it with its other sweeps, and `odooops apply` before it deploys.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from reconciler.core.db_access import DatabaseAccess, access_problems, intended_role
from reconciler.errors import OdooOpsError
from reconciler.executors.sql import database_errors

if TYPE_CHECKING:
    from reconciler.executors.postgres import Postgres


@dataclass
class AccessReport:
    checked: list[str] = field(default_factory=list)  # the platform's databases that were looked at
    repaired: dict[str, list[str]] = field(default_factory=dict)  # database -> what was wrong (now fixed)
    found: dict[str, list[str]] = field(default_factory=dict)  # database -> what is wrong (repair=False)
    failed: dict[str, str] = field(default_factory=dict)  # database -> why it could not be repaired
    dropped_roles: list[str] = field(default_factory=list)  # access roles whose database is gone

    def to_json(self) -> dict[str, object]:
        return {"checked": len(self.checked), "repaired": self.repaired, "found": self.found,
                "failed": self.failed, "dropped_roles": self.dropped_roles}


def sweep(pg: Postgres, envs: Collection[str], *, repair: bool = True) -> AccessReport:
    """Check every database of the environments `envs` and every `oo_*` database; repair what is wrong
    (secure_database for its intended role) unless `repair` is False, then drop orphaned access roles."""
    report = AccessReport()
    admin = str(pg.params["user"])
    seen = pg.database_access()
    for name, (owner, grants) in sorted(seen.items()):
        access = DatabaseAccess(name, owner, grants)
        role = intended_role(access, envs, admin)
        if role is None:
            continue
        report.checked.append(name)
        problems = access_problems(access, role)
        if not problems:
            continue
        if not repair:
            report.found[name] = problems
            continue
        try:
            with database_errors():
                pg.secure_database(name, role)
        except OdooOpsError as exc:
            # Say the environment's role was dropped while its database lives on: a person must look.
            report.failed[name] = f"{'; '.join(problems)}: {getattr(exc, 'message', None) or str(exc).strip()}"
            continue
        report.repaired[name] = problems
    if repair:
        for role in pg.access_roles():
            # Checked again now: a clone may have made the database (and its role) since the listing.
            if role not in seen and not pg.exists(role) and pg.drop_access_role(role):
                report.dropped_roles.append(role)
    return report
