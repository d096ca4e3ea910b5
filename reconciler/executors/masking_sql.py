"""The statements of masking (data/masking.py), composed here where identifiers are quoted: a masked column's
expression, one UPDATE per table, the table of phone values to map. What is masked, and how (the kinds,
the keyed functions, the phone pools), is decided in data/masking.py; the condition of rows to keep comes
from the reviewed catalogue as text."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from psycopg import sql

# PostgreSQL's text types (information_schema.columns.data_type).
TEXT_TYPES = frozenset({"character varying", "text", "character"})


class Rule(Protocol):
    @property
    def table(self) -> str: ...

    @property
    def column(self) -> str: ...

    @property
    def kind(self) -> str: ...

    @property
    def derive_from(self) -> tuple[str, ...]: ...


class MaskedColumn(Protocol):
    """A column a masking rule applies to, as the database describes it."""

    @property
    def rule(self) -> Rule: ...

    @property
    def data_type(self) -> str: ...

    @property
    def max_length(self) -> int | None: ...

    @property
    def nullable(self) -> bool: ...


def mask_expression(col: MaskedColumn) -> sql.Composable:
    """SQL computing the masked value of `col` from itself; the key is the query parameter %(k)s."""
    ident = sql.Identifier(col.rule.column)
    if col.rule.kind == "null":
        if col.nullable:
            return sql.SQL("NULL")
        return sql.SQL("''") if col.data_type in TEXT_TYPES else sql.SQL("'{}'::jsonb")
    fn = sql.SQL("pg_temp.{}").format(sql.Identifier(f"oo_{col.rule.kind}"))
    if col.data_type == "jsonb":
        # Translated fields: {"en_US": "...", "fr_FR": "..."}; every string value is masked.
        return sql.SQL(
            "CASE WHEN jsonb_typeof({c}) = 'object' THEN (SELECT jsonb_object_agg(j.key, CASE WHEN "
            "jsonb_typeof(j.value) = 'string' THEN to_jsonb({fn}(j.value #>> '{{}}', %(k)s)) ELSE j.value END) "
            "FROM jsonb_each({c}) j) ELSE {c} END").format(c=ident, fn=fn)
    expr = sql.SQL("{fn}({c}::text, %(k)s)").format(fn=fn, c=ident)
    return _fit(expr, col)


def _fit(expr: sql.Composable, col: MaskedColumn) -> sql.Composable:
    if col.max_length:
        return sql.SQL("left({e}, {n})").format(e=expr, n=sql.Literal(col.max_length))
    return expr


def phone_source_table(columns: Sequence[MaskedColumn], keeps: Mapping[str, str | None]) -> sql.Composed:
    """CREATE TEMP TABLE oo_phone_src: every distinct phone value of `columns` (but in the rows `keeps` holds
    for their table), whether it is written in international form, its digits and its calling code found in
    oo_cc (by the longest of 1 to 3 leading digits)."""
    selects = []
    for col in columns:
        keep = keeps.get(col.rule.table)
        where = sql.SQL("{c} IS NOT NULL AND {c}::text <> ''").format(c=sql.Identifier(col.rule.column))
        if keep is not None:
            where = sql.SQL("{w} AND NOT ({k})").format(w=where, k=sql.SQL(keep))
        selects.append(sql.SQL("SELECT {c}::text AS v FROM {t} WHERE {w}").format(
            c=sql.Identifier(col.rule.column), t=sql.Identifier(col.rule.table), w=where))
    return sql.SQL(
        "CREATE TEMP TABLE oo_phone_src AS SELECT v AS src, intl, d, "
        "CASE WHEN intl THEN coalesce(c1.code, c2.code, c3.code) END AS cc FROM ("
        "  SELECT v, v ~ '^\\s*(\\+|00)' AS intl, CASE WHEN v ~ '^\\s*00' "
        "    THEN substr(regexp_replace(v, '\\D', '', 'g'), 3) ELSE regexp_replace(v, '\\D', '', 'g') END AS d "
        "  FROM ({u}) a GROUP BY v) s "
        "LEFT JOIN oo_cc c1 ON s.intl AND c1.code = left(s.d, 1) "
        "LEFT JOIN oo_cc c2 ON s.intl AND c2.code = left(s.d, 2) "
        "LEFT JOIN oo_cc c3 ON s.intl AND c3.code = left(s.d, 3)").format(u=sql.SQL(" UNION ALL ").join(selects))


def table_update(table: str, cols: Sequence[MaskedColumn], phones: Sequence[MaskedColumn], joined: list[str],
                 keep: str | None) -> sql.Composed:
    """One UPDATE for the table: expressions for most kinds; `phones` (of `cols`) take their value from a join
    with oo_phone_map on each column of `joined` (the phone columns and those they derive from)."""
    sets: list[sql.Composable] = []
    for c in cols:
        ident = sql.Identifier(c.rule.column)
        expr: sql.Composable
        if c in phones:
            if c.rule.kind == "phone":
                value = sql.SQL("p.{}").format(sql.Identifier(f"oo_i{joined.index(c.rule.column)}"))
            else:
                sources = [n for n in c.rule.derive_from if n in joined] + [c.rule.column]
                value = sql.SQL("coalesce({})").format(sql.SQL(", ").join(
                    sql.SQL("p.{}").format(sql.Identifier(f"oo_e{joined.index(n)}")) for n in sources))
            expr = sql.SQL("CASE WHEN {c} IS NULL OR {c} = '' THEN {c} ELSE coalesce({v}, {c}) END").format(
                c=ident, v=_fit(value, c))
        else:
            expr = mask_expression(c)
        sets.append(sql.SQL("{} = {}").format(ident, expr))
    t = sql.Identifier(table)
    stmt = sql.SQL("UPDATE {t} SET {s}").format(t=t, s=sql.SQL(", ").join(sets))
    conds: list[sql.Composable] = []
    if joined:
        outs: list[sql.Composable] = [sql.SQL("s.id AS oo_id")]
        joins: list[sql.Composable] = []
        for i, name in enumerate(joined):
            m = sql.Identifier(f"m{i}")
            outs.append(sql.SQL("{m}.intl AS {a}, {m}.e164 AS {b}").format(
                m=m, a=sql.Identifier(f"oo_i{i}"), b=sql.Identifier(f"oo_e{i}")))
            joins.append(sql.SQL("LEFT JOIN oo_phone_map {m} ON {m}.src = s.{c}::text").format(
                m=m, c=sql.Identifier(name)))
        stmt += sql.SQL(" FROM (SELECT {o} FROM {t} s {j}) p").format(
            o=sql.SQL(", ").join(outs), t=t, j=sql.SQL(" ").join(joins))
        conds.append(sql.SQL("p.oo_id = {t}.id").format(t=t))
    if keep is not None:
        conds.append(sql.SQL("NOT ({})").format(sql.SQL(keep)))
    if conds:
        stmt += sql.SQL(" WHERE ") + sql.SQL(" AND ").join(conds)
    return stmt
