"""Exec into production: off unless the policy enables it; then read-only, time-limited and without secrets."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

DEFAULT_MAX_SECONDS = 60.0
# Where the platform puts secrets into an Odoo container: the config file (db_password and the master
# password admin_passwd) under /etc/odoo, and variables named like a credential.
SECRET_DIRS = ("/etc/odoo",)
SECRET_VARIABLE = re.compile(r"PASS|SECRET|TOKEN|KEY|CREDENTIAL", re.IGNORECASE)


@dataclass(frozen=True)
class ProductionExec:
    """The policy's `production_exec` block: {enabled: false, max_seconds: 60} when it is absent."""

    enabled: bool = False
    max_seconds: float = DEFAULT_MAX_SECONDS

    @classmethod
    def from_raw(cls, raw: dict[str, Any] | None) -> ProductionExec:
        raw = raw or {}
        return cls(bool(raw.get("enabled", False)), float(raw.get("max_seconds", DEFAULT_MAX_SECONDS)))


def is_secret_mount(target: str) -> bool:
    target = "/" + target.strip("/")
    return any(target == d or target.startswith(d + "/") for d in SECRET_DIRS)


def read_only_container(container: dict[str, Any]) -> dict[str, Any]:
    """A copy of an environment's container spec for a one-off command on production: no mount that
    holds secrets (odoo.conf), no variable named like a credential, every other mount read-only. The
    command sees the code, the filestore and the image, and can change none of them; without the
    database password it cannot reach the database either."""
    out = dict(container)
    out["mounts"] = [{**m, "read_only": True} for m in container.get("mounts", [])
                     if not is_secret_mount(str(m.get("target", "")))]
    out["environment"] = {k: v for k, v in (container.get("environment") or {}).items()
                          if not SECRET_VARIABLE.search(k)}
    return out
