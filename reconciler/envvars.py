"""Numeric host settings from the environment (ODOOOPS_*), refused with a clear error when malformed."""

from __future__ import annotations

import os
from collections.abc import Mapping

from reconciler.errors import OdooOpsError


def env_number(name: str, default: float, *, integer: bool = False, env: Mapping[str, str] | None = None) -> float:
    """The non-negative number in `name`, `default` when unset or empty; HOST_NOT_CONFIGURED otherwise."""
    raw = (os.environ if env is None else env).get(name, "").strip()
    try:
        value = (int(raw) if integer else float(raw)) if raw else default
    except ValueError:
        value = -1
    if value < 0:
        what = "a non-negative integer" if integer else "a number of seconds"
        raise OdooOpsError("HOST_NOT_CONFIGURED", f"{name}={raw!r} is not {what}",
                           f"set {name} to e.g. {default} or unset it", {"variable": name})
    return value
