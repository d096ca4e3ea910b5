"""Parse the human quantities users write in YAML: CPU ("4000m", 2), memory ("8Gi"), durations."""

from __future__ import annotations

import re

_CPU = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(m?)$")
_BYTES = re.compile(r"^([0-9]+(?:\.[0-9]+)?)\s*(Ki|Mi|Gi|Ti|K|M|G|T)?B?$")
_DURATION = re.compile(r"^([0-9]+)\s*(h|d|w)$")
_UNITS = {
    None: 1,
    "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12,
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40,
}


class QuantityError(ValueError):
    """A quantity that does not parse; the message says what is accepted."""


def parse_cpu(value: object) -> float:
    """Cores as a float: 2, 0.5, "500m", "4000m"."""
    if isinstance(value, bool):
        raise QuantityError("expected CPU cores such as 2, 0.5 or \"500m\"")
    if isinstance(value, int | float):
        cores = float(value)
    else:
        m = _CPU.match(str(value).strip())
        if not m:
            raise QuantityError(f"{value!r} is not a CPU amount: use cores (2, 0.5) or millicores (\"500m\")")
        cores = float(m.group(1)) / (1000 if m.group(2) else 1)
    if cores <= 0:
        raise QuantityError("CPU must be greater than 0")
    return round(cores, 3)


def parse_mib(value: object) -> int:
    """Mebibytes as an int: "8Gi", "512Mi", "2G"; a bare number means MiB."""
    return _parse_bytes(value, default_unit="Mi") // 2**20


def parse_gib(value: object) -> int:
    """Gibibytes as an int: "100Gi", "1Ti"; a bare number means GiB."""
    return _parse_bytes(value, default_unit="Gi") // 2**30


def _parse_bytes(value: object, default_unit: str) -> int:
    if isinstance(value, bool):
        raise QuantityError("expected a size such as \"8Gi\" or \"512Mi\"")
    if isinstance(value, int | float):
        amount, unit = float(value), default_unit
    else:
        m = _BYTES.match(str(value).strip())
        if not m:
            raise QuantityError(f"{value!r} is not a size: use a number with Mi, Gi or Ti (\"8Gi\")")
        amount, unit = float(m.group(1)), m.group(2) or default_unit
    total = int(amount * _UNITS[unit])
    if total <= 0:
        raise QuantityError("size must be greater than 0")
    return total


def parse_ttl_hours(value: object) -> int | None:
    """Hours as an int, or None for "never": 48, "36h", "14d", "2w", null, "never"."""
    if value is None or value == "never":
        return None
    if isinstance(value, bool):
        raise QuantityError("expected a duration such as \"14d\", \"36h\" or \"never\"")
    if isinstance(value, int):
        hours = value
    else:
        m = _DURATION.match(str(value).strip())
        if not m:
            raise QuantityError(
                f"{value!r} is not a duration: use hours, days or weeks (\"36h\", \"14d\", \"2w\") or \"never\""
            )
        hours = int(m.group(1)) * {"h": 1, "d": 24, "w": 168}[m.group(2)]
    if hours <= 0:
        raise QuantityError("a TTL must be at least 1 hour (or \"never\")")
    return hours


def format_mib(mib: int) -> str:
    return f"{mib // 1024} GiB" if mib % 1024 == 0 else f"{mib} MiB"


def format_ttl(hours: int | None) -> str:
    if hours is None:
        return "never"
    return f"{hours // 24}d" if hours % 24 == 0 else f"{hours}h"
