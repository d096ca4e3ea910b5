"""The statements of masking (executors/masking_sql.py) for the whole catalogue, byte for byte, against
tests/golden/masking-statements.txt: a change to how they are composed must not change what is sent."""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

from reconciler.data.catalogue import DEFAULT_VERSION, load_catalogue
from reconciler.data.masking import PHONE_KINDS, Column
from reconciler.executors.masking_sql import TEXT_TYPES, phone_source_table, table_update

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "masking-statements.txt"
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"


class Schema(NamedTuple):
    """How every column of the catalogue is typed in one rendering: each branch of the builders is taken
    by one of them (Odoo's Char and Text, a sized NOT NULL column, translated jsonb, a table without id)."""

    name: str
    data_type: str
    max_length: int | None
    nullable: bool
    has_id: bool


SCHEMAS = (
    Schema("varchar", "character varying", None, True, True),
    Schema("varchar(64) not null", "character varying", 64, False, True),
    Schema("text", "text", None, True, True),
    Schema("char(16)", "character", 16, True, True),
    Schema("jsonb", "jsonb", None, True, True),
    Schema("jsonb not null", "jsonb", None, False, True),
    Schema("varchar, no id column", "character varying", None, True, False),
)


def _phones(cols: list[Column], has_id: bool) -> tuple[list[Column], list[str]]:
    """What data/masking.py's _phone_columns hands table_update for a table that has the catalogue's columns."""
    phones = [c for c in cols if c.rule.kind in PHONE_KINDS and c.data_type in TEXT_TYPES] if has_id else []
    joined: list[str] = []
    for c in phones:
        for name in (c.rule.column, *c.rule.derive_from):
            if name not in joined:
                joined.append(name)
    existing = {c.rule.column for c in cols}
    return phones, [name for name in joined if name in existing]


def render() -> str:
    catalogue = load_catalogue(DEFAULT_VERSION)
    out = [f"-- masking statements of the Odoo {catalogue.version} catalogue (tests/executors/test_masking_sql.py)"]
    for schema in SCHEMAS:
        columns = [Column(rule, schema.data_type, schema.max_length, schema.nullable) for rule in catalogue.rules]
        by_table: dict[str, list[Column]] = {}
        for col in columns:
            by_table.setdefault(col.rule.table, []).append(col)
        keeps = {table: catalogue.keep_rows.get(table) for table in by_table}
        out.append(f"\n-- columns typed {schema.name}")
        phone_columns = [c for c in columns if c.rule.kind in PHONE_KINDS and c.data_type in TEXT_TYPES]
        if phone_columns:
            out.append(phone_source_table(phone_columns, keeps).as_string() + ";")
        for table, cols in sorted(by_table.items()):
            phones, joined = _phones(cols, schema.has_id)
            out.append(table_update(table, cols, phones, joined, keeps[table]).as_string() + ";")
    return "\n".join(out) + "\n"


def test_the_catalogues_statements_are_unchanged() -> None:
    text = render()
    if UPDATE:
        GOLDEN.write_text(text, encoding="utf-8")
    assert text == GOLDEN.read_text(encoding="utf-8"), \
        "the masking statements changed; rerun with UPDATE_GOLDEN=1 only if the change is intended"


def test_every_branch_of_the_builders_is_in_the_golden_file() -> None:
    """The golden file proves nothing about a branch no rendering takes."""
    text = GOLDEN.read_text(encoding="utf-8")
    for taken in ("jsonb_object_agg", "left(pg_temp.", "= NULL", "= ''", "= '{}'::jsonb", "oo_phone_map",
                  "coalesce(p.\"oo_e", "p.\"oo_i", "pg_temp.\"oo_phone\"", "WHERE NOT (", "AND NOT (",
                  "CREATE TEMP TABLE oo_phone_src", "left(coalesce(", "left(p."):
        assert taken in text, taken
