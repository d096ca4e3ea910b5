"""The statements of the leak scan (data/leakscan.py), composed here where identifiers and literals are quoted:
the comparable forms (md5 of a normalised whole value, of each e-mail, of each phone's digits) of text columns,
streamed from the source into the copy's temp tables, and the reads that judge a match. What is looked for
and how a match is judged is decided in data/leakscan.py."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import psycopg
from psycopg import sql

from reconciler.executors.sql import Connection

EMAIL_RE = r"[A-Za-z0-9._+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"
# A phone number stands alone: digits inside a hash or a reference ("3fa9 1234567890 c") are not one.
PHONE_RE = r"(?<![0-9A-Za-z])\+?[0-9][0-9 ().\-/]{6,}[0-9](?![0-9A-Za-z])"
# Whole values compared: long enough to identify someone, short enough to be a field (not a document).
MIN_WHOLE, MAX_WHOLE = 6, 512


@dataclass(frozen=True)
class Source:
    """One text value per row to take comparable forms of: a column of the row `t`."""

    name: str  # the column
    whole: bool = True  # compare the whole value (else only the e-mails and phones inside)
    names_only: bool = False  # whole values must look like a full name (two words, 8+ characters)
    jsonb: bool = False  # a jsonb column: whole values are those of each language
    addresses_only: bool = False  # only values holding an @ (logins: admin-like ones are kept on purpose)

    def expr(self) -> sql.Composable:
        if self.addresses_only:
            return sql.SQL("CASE WHEN strpos(t.{c}::text, '@') > 0 THEN t.{c}::text END").format(
                c=sql.Identifier(self.name))
        return sql.SQL("t.{}").format(sql.Identifier(self.name))


def _extract(v: sql.Composable, *, whole: bool = True, names_only: bool = False) -> sql.Composable:
    """SQL rows (h uuid) of the comparable forms of text `v`: the whole value, e-mails, phone digits."""
    parts: list[sql.Composable] = []
    if whole:
        cond = sql.SQL("length(btrim({v})) BETWEEN {a} AND {b}").format(v=v, a=sql.Literal(MIN_WHOLE),
                                                                          b=sql.Literal(MAX_WHOLE))
        if names_only:  # a single word ("Administrator", "Sales") is a label far more often than a person
            cond = sql.SQL("{c} AND strpos(btrim({v}), ' ') > 0 AND length(btrim({v})) >= 8").format(c=cond, v=v)
        parts.append(sql.SQL("SELECT md5(lower(btrim({v})))::uuid AS h WHERE {c}").format(v=v, c=cond))
    # The regular expressions only run on values that can match (an @; at least 8 digits).
    parts.append(sql.SQL("SELECT md5(lower(m[1]))::uuid AS h FROM regexp_matches(CASE WHEN strpos({v}, '@') > 0 "
                         "THEN {v} END, {r}, 'g') m").format(v=v, r=sql.Literal(f"({EMAIL_RE})")))
    parts.append(sql.SQL("SELECT md5('tel:' || d)::uuid AS h FROM (SELECT regexp_replace(m[1], '\\D', '', 'g') AS d "
                         "FROM regexp_matches(CASE WHEN length({v}) - length(translate({v}, '0123456789', '')) >= 8 "
                         "THEN {v} END, {r}, 'g') m) x WHERE length(d) BETWEEN 8 AND 15").format(
        v=v, r=sql.Literal(f"({PHONE_RE})")))
    return sql.SQL(" UNION ALL ").join(parts)


def _values(table: str, column: str, data_type: str) -> tuple[sql.Composable, sql.Composable]:
    """(FROM-item, value expression): jsonb objects (translations) give one value per language."""
    c = sql.Identifier(column)
    if data_type == "jsonb":
        lateral = sql.SQL("LATERAL (SELECT j.value AS v FROM jsonb_each_text(CASE WHEN jsonb_typeof(t.{c}) = "
                          "'object' THEN t.{c} END) j UNION ALL SELECT t.{c}::text WHERE jsonb_typeof(t.{c}) "
                          "<> 'object') vv").format(c=c)
        return lateral, sql.SQL("vv.v")
    return sql.SQL("LATERAL (SELECT t.{c}::text AS v) vv").format(c=c), sql.SQL("vv.v")


def _forms(table: str, sources: Sequence[Source], where: str | None, has_id: bool) -> list[sql.Composable]:
    """SELECTs of (i, id, cell, h) over `table`, one scan each: whole values, e-mails, phone digits, and the
    languages of jsonb values. `i` is the 1-based index of the source in `sources`."""
    t = sql.Identifier(table)
    arr = sql.SQL("ARRAY[{}]::text[]").format(sql.SQL(", ").join(
        sql.SQL("({})::text").format(src.expr()) for src in sources))
    row_id = sql.SQL("t.id") if has_id else sql.SQL("NULL::bigint")
    extra = sql.SQL(" AND ({})").format(sql.SQL(where)) if where is not None else sql.SQL("")
    base = sql.SQL("FROM {t} t CROSS JOIN LATERAL unnest({a}) WITH ORDINALITY u(v, i) "
                   "WHERE u.v IS NOT NULL AND u.v <> ''{x}").format(t=t, a=arr, x=extra)
    out: list[sql.Composable] = []
    whole = [i + 1 for i, src in enumerate(sources) if src.whole and not src.jsonb]
    names = [i + 1 for i, src in enumerate(sources) if src.names_only]
    if whole:
        cond = sql.SQL("u.i = ANY({w}) AND length(btrim(u.v)) BETWEEN {a} AND {b}").format(
            w=sql.Literal(whole), a=sql.Literal(MIN_WHOLE), b=sql.Literal(MAX_WHOLE))
        if names:
            cond = sql.SQL("{c} AND (u.i <> ALL({n}) OR (strpos(btrim(u.v), ' ') > 0 AND length(btrim(u.v)) >= 8))"
                           ).format(c=cond, n=sql.Literal(names))
        out.append(sql.SQL("SELECT u.i, {id} AS id, t.ctid::text AS cell, md5(lower(btrim(u.v)))::uuid AS h "
                           "{b} AND {c}").format(id=row_id, b=base, c=cond))
    out.append(sql.SQL("SELECT i, id, cell, md5(lower((regexp_matches(v, {r}, 'g'))[1]))::uuid AS h FROM ("
                       "SELECT u.i, {id} AS id, t.ctid::text AS cell, u.v {b} AND strpos(u.v, '@') > 0) s").format(
        r=sql.Literal(f"({EMAIL_RE})"), id=row_id, b=base))
    out.append(sql.SQL("SELECT i, id, cell, md5('tel:' || d)::uuid AS h FROM (SELECT i, id, cell, "
                       "regexp_replace((regexp_matches(v, {r}, 'g'))[1], '\\D', '', 'g') AS d FROM ("
                       "SELECT u.i, {id} AS id, t.ctid::text AS cell, u.v {b} AND u.v ~ {r}) s) s2 "
                       "WHERE length(d) BETWEEN 8 AND 15").format(r=sql.Literal(PHONE_RE), id=row_id, b=base))
    jsonb = [(i + 1, src) for i, src in enumerate(sources) if src.jsonb and src.whole]
    if jsonb:
        jarr = sql.SQL("ARRAY[{}]::jsonb[]").format(sql.SQL(", ").join(src.expr() for _i, src in jsonb))
        idx = sql.SQL("(ARRAY[{}])[u.k]").format(sql.SQL(", ").join(sql.Literal(i) for i, _s in jsonb))
        out.append(sql.SQL(
            "SELECT {idx} AS i, {id} AS id, t.ctid::text AS cell, md5(lower(btrim(j.value)))::uuid AS h FROM {t} t "
            "CROSS JOIN LATERAL unnest({a}) WITH ORDINALITY u(jv, k) CROSS JOIN LATERAL jsonb_each_text("
            "CASE WHEN jsonb_typeof(u.jv) = 'object' THEN u.jv END) j WHERE length(btrim(j.value)) "
            "BETWEEN {lo} AND {hi}{x}").format(idx=idx, id=row_id, t=t, a=jarr, lo=sql.Literal(MIN_WHOLE),
                                              hi=sql.Literal(MAX_WHOLE), x=extra))
    return out


def _hashes_only(queries: list[sql.Composable]) -> sql.Composable:
    return sql.SQL(" UNION ALL ").join(sql.SQL("SELECT q.h FROM ({}) q").format(q) for q in queries)


def _copy(src: Connection, dst: Connection, query: sql.Composable, table: str, columns: str) -> None:
    """Stream the rows of query on src into table (columns) on dst: COPY out, COPY in, nothing in memory."""
    with cast(psycopg.Connection[Any], src).cursor().copy(sql.SQL("COPY ({}) TO STDOUT").format(query)) as out, \
            cast(psycopg.Connection[Any], dst).cursor().copy(
                sql.SQL("COPY {} ({}) FROM STDIN").format(sql.Identifier(table), sql.SQL(columns))) as into:
        for chunk in out:
            into.write(chunk)


def copy_low_values(source: Connection, conn: Connection, table: str, column: str, keep: str | None) -> None:
    """Into the copy's oo_low (tbl, col, id, h): each non-empty value of the source's table.column by row id,
    but in the rows `keep` holds."""
    where = sql.SQL("t.{c} IS NOT NULL AND t.{c}::text ~ '[0-9A-Za-z]'").format(c=sql.Identifier(column))
    if keep is not None:
        where = sql.SQL("{w} AND NOT ({k})").format(w=where, k=sql.SQL(keep))
    q = sql.SQL("SELECT {tl}, {cl}, t.id, md5(lower(btrim(t.{c}::text)))::uuid FROM {t} t "
                "WHERE {w}").format(tl=sql.Literal(table), cl=sql.Literal(column),
                                    c=sql.Identifier(column), t=sql.Identifier(table), w=where)
    _copy(source, conn, q, "oo_low", "tbl, col, id, h")


def copy_hashes(source: Connection, conn: Connection, table: str, sources: Sequence[Source], where: str | None,
                into: str) -> None:
    """Into the copy's temp table `into` (h): the comparable forms of `sources` of the source's table, in the
    rows `where` selects (all when None)."""
    _copy(source, conn, _hashes_only(_forms(table, sources, where, False)), into, "h")


def insert_matches(conn: Connection, table: str, sources: Sequence[Source], has_id: bool, limit: int) -> None:
    """Into oo_match (tbl, col, id, cell, h): the forms of the copy's table that are among oo_pii (one scan of
    the table per form, hash-joined with the source's values), at most `limit` per form."""
    names = sql.SQL("ARRAY[{}]::text[]").format(sql.SQL(", ").join(sql.Literal(x.name) for x in sources))
    for query in _forms(table, sources, None, has_id):
        conn.execute(sql.SQL("INSERT INTO oo_match (tbl, col, id, cell, h) SELECT {tl}, ({n})[q.i], q.id, "
                             "q.cell, q.h FROM ({q}) q WHERE q.h IN (SELECT h FROM oo_pii) LIMIT {m}").format(
            tl=sql.Literal(table), n=names, q=query, m=sql.Literal(limit)))


def cell_hashes(source: Connection, table: str, column: str, data_type: str, ids: list[int]) -> list[Any]:
    """(id, h) of every comparable form of table.column in the source's rows `ids`."""
    item, v = _values(table, column, data_type)
    q = sql.SQL("SELECT t.id, x.h::text FROM {t} t, {i}, LATERAL ({e}) x WHERE t.id = ANY(%s)").format(
        t=sql.Identifier(table), i=item, e=_extract(v))
    return source.execute(q, (ids,)).fetchall()


def low_values_kept(conn: Connection, table: str, column: str) -> int:
    """Cells of the copy's table.column that still hold the value oo_low has for the same row."""
    return int(cast(tuple[Any, ...], conn.execute(sql.SQL(
        "SELECT count(*) FROM {t} t JOIN oo_low l ON l.tbl = {tl} AND l.col = {cl} AND l.id = t.id "
        "WHERE t.{c} IS NOT NULL AND md5(lower(btrim(t.{c}::text)))::uuid = l.h").format(
        t=sql.Identifier(table), tl=sql.Literal(table), cl=sql.Literal(column),
        c=sql.Identifier(column))).fetchone())[0])
