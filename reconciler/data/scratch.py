"""Scratch databases and filestores of data operations: their names, and the sweep that removes what a
killed process left behind.

A clone, restore or backup check builds its database under a scratch name and renames (or drops) it
when done; a process killed in between leaves the scratch copy. Its name carries its kind and when it
was made, `oo_<kind>_<7 base-36 digits of the Unix time><6 hex>`, which is never an environment name
(those have no underscore) and fits PostgreSQL's 63 bytes. The sweep (the daemon runs it with its
other sweeps) drops a scratch database only when all hold: its kind is clone, restore or verify; it
is older than the maximum age; nobody is connected to it; and the environment owning it is not in
the middle of an operation (its lock is free). `oo_old_*` (the live data a swap set aside) is never
dropped automatically: it is reported, because after a crash mid-swap it may be the only copy.
A sweep given the environments it answers for (the daemon passes its project's) looks only at the
scratch databases those environments' roles own and at their filestore directories: another
project's copies on the same PostgreSQL cluster and host are not its to judge.
"""

from __future__ import annotations

import re
import secrets as pysecrets
import shutil
import time
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from reconciler.platform.env_lock import is_busy
from reconciler.platform.host import host_setting

if TYPE_CHECKING:
    from reconciler.executors.postgres import Postgres
    from reconciler.platform.host import HostSettings

SWEPT = ("clone", "restore", "verify")
KINDS = (*SWEPT, "old")
_NAME = re.compile(r"^\.?oo_(clone|restore|verify|old)_([0-9a-z]{7})([0-9a-f]{6})(\.partial)?$")
_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"


def _base36(n: int, width: int = 7) -> str:
    out = ""
    while n:
        n, r = divmod(n, 36)
        out = _DIGITS[r] + out
    return out.rjust(width, "0")[-width:]


def scratch_name(kind: str, now: float | None = None) -> str:
    if kind not in KINDS:
        raise ValueError(f"unknown scratch kind {kind!r}")
    return f"oo_{kind}_{_base36(int(time.time() if now is None else now))}{pysecrets.token_hex(3)}"


def old_name(scratch: str) -> str:
    """Where a swap sets the live data aside: same time and random part as the scratch copy."""
    return "oo_old_" + scratch.rsplit("_", 1)[-1]


def parse(name: str) -> tuple[str, float] | None:
    """(kind, creation time) of a scratch name (also `.NAME.partial` directories), else None."""
    m = _NAME.match(name)
    return (m.group(1), float(int(m.group(2), 36))) if m else None


def max_age_s() -> float:
    """limits.scratch_max_age_s of the host (default 6 h: longer than any operation the API waits for)."""
    return float(host_setting("limits.scratch_max_age_s"))


@dataclass
class SweepReport:
    dropped: list[str] = field(default_factory=list)  # databases
    removed: list[str] = field(default_factory=list)  # filestore directories
    kept: dict[str, str] = field(default_factory=dict)  # scratch name -> why it stays
    set_aside: list[str] = field(default_factory=list)  # oo_old_*: for a person to look at

    def to_json(self) -> dict[str, object]:
        return {"dropped": self.dropped, "removed": self.removed, "kept": self.kept, "set_aside": self.set_aside}


def sweep(pg: Postgres, host: HostSettings, *, now: float | None = None, max_age: float | None = None,
          envs: Collection[str] | None = None) -> SweepReport:
    """Drop stale scratch databases and remove stale scratch filestore directories (see the module doc);
    with `envs`, only those of these environments."""
    now = time.time() if now is None else now
    max_age = max_age_s() if max_age is None else max_age
    report = SweepReport()
    owners = pg.database_owners("oo_")
    if envs is not None:
        owners = {db: owner for db, owner in owners.items() if owner in envs}
    for db, owner in sorted(owners.items()):
        parsed = parse(db)
        if parsed is None:
            continue  # templates (oo_tpl_*) and names of older versions: not ours to judge here
        kind, created = parsed
        if kind == "old":
            report.set_aside.append(db)
        elif now - created < max_age:
            report.kept[db] = "recent"
        elif owner and is_busy(host.state_dir, owner):
            report.kept[db] = f"{owner} is in an operation"
        elif pg.sessions(db):
            report.kept[db] = "in use"
        else:
            pg.drop(db)
            report.dropped.append(db)
    live = set(owners) - set(report.dropped)
    for path in sorted(host.filestore_root.glob("*/filestore/*")):
        if envs is not None and path.parent.parent.name not in envs:
            continue
        parsed = parse(path.name)
        if parsed is None or parsed[0] not in SWEPT or now - parsed[1] < max_age:
            continue
        if path.name.lstrip(".").removesuffix(".partial") in live:
            continue
        if not is_busy(host.state_dir, path.parent.parent.name):
            shutil.rmtree(path, ignore_errors=True)
            report.removed.append(str(path))
    return report

