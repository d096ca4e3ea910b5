"""The reviewed masking catalogue per Odoo version: which table and column hold which kind of personal data."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from reconciler.errors import OdooOpsError
from reconciler.executors.sql import Connection

CATALOGUE_DIR = Path(__file__).parent / "masking_catalogue"
DEFAULT_VERSION = "19.0"
_VERSION = re.compile(r"^(\d+)\.(\d+)")


@dataclass(frozen=True)
class MaskRule:
    table: str
    column: str
    kind: str
    # phone_e164: the row's phone columns whose fake gives this column's value (first one set wins).
    derive_from: tuple[str, ...] = ()


@dataclass(frozen=True)
class Catalogue:
    version: str
    rules: tuple[MaskRule, ...]
    deletes: tuple[str, ...] = ()
    # table -> SQL condition of rows that are not personal data and stay as they are.
    keep_rows: dict[str, str] = field(default_factory=dict)

    def with_rules(self, extra: list[MaskRule]) -> Catalogue:
        """This catalogue plus the project's rules; a project rule for the same column wins."""
        by_column = {(r.table, r.column): r for r in self.rules}
        by_column.update({(r.table, r.column): r for r in extra})
        return Catalogue(self.version, tuple(by_column.values()), self.deletes, dict(self.keep_rows))


def _raw(version: str, seen: tuple[str, ...] = ()) -> dict[str, Any]:
    path = CATALOGUE_DIR / f"odoo-{version}.yaml"
    if version in seen or not path.is_file():
        raise OdooOpsError("MASK_CATALOGUE_MISSING", f"no masking catalogue for Odoo {version} ({path})",
                           f"add {path.name} to {CATALOGUE_DIR} (see odoo-{DEFAULT_VERSION}.yaml)",
                           {"version": version})
    doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not doc.get("extends"):
        return doc
    base = _raw(str(doc["extends"]), (*seen, version))
    tables = {t: dict(cols) for t, cols in (base.get("tables") or {}).items()}
    for table, cols in (doc.get("tables") or {}).items():
        tables.setdefault(table, {}).update(cols or {})
    return {"odoo": doc.get("odoo", version), "tables": tables,
            "delete": list(dict.fromkeys([*(base.get("delete") or []), *(doc.get("delete") or [])])),
            "keep_rows": {**(base.get("keep_rows") or {}), **(doc.get("keep_rows") or {})}}


def load_catalogue(version: str = DEFAULT_VERSION) -> Catalogue:
    """The catalogue of `version` ("19.0"); versions without their own file use the nearest older one."""
    available = sorted((_version_key(p.stem.removeprefix("odoo-")), p.stem.removeprefix("odoo-"))
                       for p in CATALOGUE_DIR.glob("odoo-*.yaml"))
    wanted = _version_key(version)
    older = [v for k, v in available if k <= wanted]
    chosen = older[-1] if older else available[0][1]
    doc = _raw(chosen)
    rules: list[MaskRule] = []
    for table, cols in (doc.get("tables") or {}).items():
        for column, spec in (cols or {}).items():
            if isinstance(spec, dict):
                rules.append(MaskRule(table, column, str(spec["kind"]), tuple(spec.get("from") or ())))
            else:
                rules.append(MaskRule(table, column, str(spec)))
    return Catalogue(chosen, tuple(rules), tuple(doc.get("delete") or ()), dict(doc.get("keep_rows") or {}))


def _version_key(version: str) -> tuple[int, int]:
    m = _VERSION.match(version)
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)


def odoo_version(conn: Connection) -> str:
    """The Odoo series of a database ("19.0"), read from base's installed version; 19.0 when unknown."""
    if not conn.execute("SELECT 1 FROM information_schema.tables WHERE table_schema = 'public' "
                        "AND table_name = 'ir_module_module'").fetchone():
        return DEFAULT_VERSION
    row = conn.execute("SELECT latest_version FROM ir_module_module WHERE name = 'base'").fetchone()
    m = _VERSION.match(str(row[0] or "")) if row else None
    return f"{m.group(1)}.{m.group(2)}" if m else DEFAULT_VERSION


__all__ = ["Catalogue", "MaskRule", "load_catalogue", "odoo_version"]
