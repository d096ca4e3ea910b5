"""Scan a whole masked copy (every text column of every table, and the filestore) for the source's personal values.

What is looked for: the personal values of the source, taken from the masking catalogue's columns
(rows the catalogue keeps excluded): whole values of names, streets, VATs, bank accounts and URLs,
every e-mail address, and every phone number by its digits — inside free text too. They are
compared as md5 hashes of a normalised form (set-based: one semi-join per table), so the copy never
holds the source's values in clear and memory stays flat.

How a match is judged (zero false positives from the masker's own output, by construction):
- LEAK: the copy's cell still holds the value its source cell held (same table, column and id:
  it stayed), or the value is one the masker did not produce (it came from the source some other way);
- CHANCE: the cell changed and the value is one the masker produced (a fake for person A that
  equals person B's real value): the cell is in a masked column (every row of it was rewritten), or
  elsewhere with a value that the masked columns hold.
Low-entropy kinds (zip, city, short codes) are compared cell by cell only: a fake "Springfield" that
is also someone's real town tells nothing about anyone.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import psycopg
from psycopg import sql

from reconciler.data.catalogue import Catalogue
from reconciler.data.masking import Column, applicable, keep_condition

EMAIL_RE = r"[A-Za-z0-9._+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"
# A phone number stands alone: digits inside a hash or a reference ("3fa9 1234567890 c") are not one.
PHONE_RE = r"(?<![0-9A-Za-z])\+?[0-9][0-9 ().\-/]{6,}[0-9](?![0-9A-Za-z])"
_EMAIL = re.compile(EMAIL_RE.encode())
_PHONE = re.compile(PHONE_RE.encode())
# Whole values compared: long enough to identify someone, short enough to be a field (not a document).
MIN_WHOLE, MAX_WHOLE = 6, 512
WHOLE_KINDS = frozenset({"name", "street", "vat", "iban", "url", "phone", "phone_e164", "email", "login"})
LOW_KINDS = frozenset({"zip", "city", "digits"})
SKIPPED_KINDS = frozenset({"null", "hash"})
MAX_MATCHES = 10000
MODULE_DATA_TABLES = ("ir_ui_view", "ir_module_module", "ir_model", "ir_model_fields", "ir_model_fields_selection",
                      "ir_ui_menu", "ir_asset", "ir_act_window", "ir_act_server", "ir_act_report_xml",
                      "ir_actions", "res_groups", "mail_template", "ir_model_data", "website_page", "website_menu",
                      "theme_ir_ui_view", "ir_attachment_asset")
MAX_FILE_BYTES = 20 * 1024 * 1024


def _hash(value: str) -> str:
    return hashlib.md5(value.encode("utf-8")).hexdigest()  # a fingerprint, not a secret


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


@dataclass(frozen=True)
class _Source:
    """One text value per row to take comparable forms of: an SQL expression over the row `t`."""

    name: str
    expr: sql.Composable
    whole: bool = True  # compare the whole value (else only the e-mails and phones inside)
    names_only: bool = False  # whole values must look like a full name (two words, 8+ characters)
    jsonb: bool = False  # a jsonb column: whole values are those of each language


def _forms(table: str, sources: list[_Source], where: sql.Composable | None, has_id: bool) -> list[sql.Composable]:
    """SELECTs of (i, id, cell, h) over `table`, one scan each: whole values, e-mails, phone digits, and the
    languages of jsonb values. `i` is the 1-based index of the source in `sources`."""
    t = sql.Identifier(table)
    arr = sql.SQL("ARRAY[{}]::text[]").format(sql.SQL(", ").join(
        sql.SQL("({})::text").format(src.expr) for src in sources))
    row_id = sql.SQL("t.id") if has_id else sql.SQL("NULL::bigint")
    extra = sql.SQL(" AND ({})").format(where) if where is not None else sql.SQL("")
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
        jarr = sql.SQL("ARRAY[{}]::jsonb[]").format(sql.SQL(", ").join(src.expr for _i, src in jsonb))
        idx = sql.SQL("(ARRAY[{}])[u.k]").format(sql.SQL(", ").join(sql.Literal(i) for i, _s in jsonb))
        out.append(sql.SQL(
            "SELECT {idx} AS i, {id} AS id, t.ctid::text AS cell, md5(lower(btrim(j.value)))::uuid AS h FROM {t} t "
            "CROSS JOIN LATERAL unnest({a}) WITH ORDINALITY u(jv, k) CROSS JOIN LATERAL jsonb_each_text("
            "CASE WHEN jsonb_typeof(u.jv) = 'object' THEN u.jv END) j WHERE length(btrim(j.value)) "
            "BETWEEN {lo} AND {hi}{x}").format(idx=idx, id=row_id, t=t, a=jarr, lo=sql.Literal(MIN_WHOLE),
                                              hi=sql.Literal(MAX_WHOLE), x=extra))
    return out


def _catalogue_sources(cols: list[Column]) -> list[_Source]:
    out = []
    for col in cols:
        kind = col.rule.kind
        c = sql.SQL("t.{}").format(sql.Identifier(col.rule.column))
        if kind == "login":  # admin-like logins (no @) are kept on purpose: only addresses count
            c = sql.SQL("CASE WHEN strpos(t.{c}::text, '@') > 0 THEN t.{c}::text END").format(
                c=sql.Identifier(col.rule.column))
        whole = kind in WHOLE_KINDS and kind != "login"
        out.append(_Source(col.rule.column, c, whole=whole, names_only=kind == "name"))
        if col.data_type == "jsonb" and whole:
            out.append(_Source(col.rule.column, sql.SQL("t.{}").format(sql.Identifier(col.rule.column)),
                               whole=True, names_only=kind == "name", jsonb=True))
    return out


def _table_sources(cols: list[tuple[str, str]]) -> list[_Source]:
    out = [_Source(column, sql.SQL("t.{}").format(sql.Identifier(column)), whole=data_type != "jsonb")
           for column, data_type in cols]
    out += [_Source(column, sql.SQL("t.{}").format(sql.Identifier(column)), jsonb=True)
            for column, data_type in cols if data_type == "jsonb"]
    return out


def _hashes_only(queries: list[sql.Composable]) -> sql.Composable:
    return sql.SQL(" UNION ALL ").join(sql.SQL("SELECT q.h FROM ({}) q").format(q) for q in queries)


def _by_table(cols: Mapping[tuple[str, str], Column]) -> dict[str, list[Column]]:
    out: dict[str, list[Column]] = {}
    for (table, _column), col in sorted(cols.items()):
        if col.rule.kind not in LOW_KINDS:
            out.setdefault(table, []).append(col)
    return out


def _copy(src: psycopg.Connection[Any], dst: psycopg.Connection[Any], query: sql.Composable, table: str,
          columns: str) -> None:
    with src.cursor().copy(sql.SQL("COPY ({}) TO STDOUT").format(query)) as out, \
            dst.cursor().copy(sql.SQL("COPY {} ({}) FROM STDIN").format(sql.Identifier(table), sql.SQL(columns))) \
            as into:
        for chunk in out:
            into.write(chunk)


def _text_columns(conn: psycopg.Connection[Any]) -> dict[str, list[tuple[str, str]]]:
    rows = conn.execute(
        "SELECT c.table_name, c.column_name, c.data_type FROM information_schema.columns c "
        "JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name "
        "WHERE c.table_schema = 'public' AND t.table_type = 'BASE TABLE' "
        "AND c.data_type IN ('text', 'character varying', 'character', 'jsonb') "
        "ORDER BY c.table_name, c.ordinal_position").fetchall()
    out: dict[str, list[tuple[str, str]]] = {}
    for table, column, data_type in rows:
        out.setdefault(table, []).append((column, data_type))
    return out


def _ids(conn: psycopg.Connection[Any]) -> set[str]:
    return {r[0] for r in conn.execute("SELECT table_name FROM information_schema.columns WHERE table_schema = "
                                       "'public' AND column_name = 'id' AND data_type IN ('integer', 'bigint')")}


def scan_clone(conn: psycopg.Connection[Any], source: psycopg.Connection[Any], catalogue: Catalogue, *,
               filestore: Path | None = None, source_filestore: Path | None = None) -> dict[str, Any]:
    """Scan the copy behind `conn` for `source`'s personal values; returns {"ok", "leaks", "chance", ...}."""
    started = time.monotonic()
    src_cols = {(c.rule.table, c.rule.column): c for c in applicable(source, catalogue.rules)
                if c.rule.kind not in SKIPPED_KINDS}
    dst_cols = {(c.rule.table, c.rule.column): c for c in applicable(conn, catalogue.rules)
                if c.rule.kind not in SKIPPED_KINDS}
    src_keep = {t: keep_condition(catalogue, t, source) for t, _c in src_cols}
    src_ids, dst_ids = _ids(source), _ids(conn)
    conn.execute("DROP TABLE IF EXISTS oo_pii, oo_kept, oo_low, oo_match")
    conn.execute("SET work_mem = '256MB'")  # the source's values hashed in memory: millions of 16-byte keys
    conn.execute("CREATE TEMP TABLE oo_pii (h uuid)")
    conn.execute("CREATE TEMP TABLE oo_kept (h uuid)")
    conn.execute("CREATE TEMP TABLE oo_low (tbl text, col text, id bigint, h uuid)")
    conn.execute("CREATE TEMP TABLE oo_match (tbl text, col text, id bigint, cell text, h uuid)")
    # 1. The source's personal values (P), minus those of rows the catalogue keeps (company, OdooBot).
    for (table, _column), col in sorted(src_cols.items()):
        kind = col.rule.kind
        if kind in LOW_KINDS:
            if table in src_ids:
                where = sql.SQL("t.{c} IS NOT NULL AND t.{c}::text ~ '[0-9A-Za-z]'").format(
                    c=sql.Identifier(col.rule.column))
                if src_keep.get(table) is not None:
                    where = sql.SQL("{w} AND NOT ({k})").format(w=where, k=src_keep[table])
                q = sql.SQL("SELECT {tl}, {cl}, t.id, md5(lower(btrim(t.{c}::text)))::uuid FROM {t} t "
                            "WHERE {w}").format(tl=sql.Literal(table), cl=sql.Literal(col.rule.column),
                                                c=sql.Identifier(col.rule.column), t=sql.Identifier(table), w=where)
                _copy(source, conn, q, "oo_low", "tbl, col, id, h")
            continue
    for table, cols in _by_table(src_cols).items():
        sources = _catalogue_sources(cols)
        keep = src_keep.get(table)
        _copy(source, conn, _hashes_only(_forms(table, sources, sql.SQL("NOT ({})").format(keep) if keep else None,
                                                False)), "oo_pii", "h")
        if keep is not None:
            _copy(source, conn, _hashes_only(_forms(table, sources, keep, False)), "oo_kept", "h")
    # Strings shipped with Odoo's modules (views, module descriptions, menus, templates) are not anyone's
    # data: a partner whose e-mail equals the one in a website snippet does not make every copy fail.
    src_text = _text_columns(source)
    for table in MODULE_DATA_TABLES:
        if table in src_text:
            _copy(source, conn, _hashes_only(_forms(table, _table_sources(src_text[table]), None, False)),
                  "oo_kept", "h")
    conn.execute("CREATE TEMP TABLE oo_p AS SELECT DISTINCT h FROM oo_pii EXCEPT SELECT h FROM oo_kept")
    conn.execute("DROP TABLE oo_pii, oo_kept")
    conn.execute("ALTER TABLE oo_p RENAME TO oo_pii")
    conn.execute("CREATE UNIQUE INDEX ON oo_pii (h)")
    conn.execute("ANALYZE oo_pii")
    personal = int(cast(tuple[Any, ...], conn.execute("SELECT count(*) FROM oo_pii").fetchone())[0])
    phases = {"source_values": time.monotonic() - started}
    # 3. Every text column of every table of the copy, against P (one hash semi-join per table).
    tables = _text_columns(conn)
    columns_scanned = 0
    for table, text_cols in tables.items():
        if table.startswith("oo_"):
            continue
        columns_scanned += len(text_cols)
        sources = _table_sources(text_cols)
        names = sql.SQL("ARRAY[{}]::text[]").format(sql.SQL(", ").join(sql.Literal(x.name) for x in sources))
        for query in _forms(table, sources, None, table in dst_ids):
            # One scan of the table per form, hash-joined with the source's values.
            conn.execute(sql.SQL("INSERT INTO oo_match (tbl, col, id, cell, h) SELECT {tl}, ({n})[q.i], q.id, "
                                 "q.cell, q.h FROM ({q}) q WHERE q.h IN (SELECT h FROM oo_pii) LIMIT {m}").format(
                tl=sql.Literal(table), n=names, q=query, m=sql.Literal(MAX_MATCHES)))
    phases["tables"] = time.monotonic() - started - sum(phases.values())
    # 4. Judge each match: did the cell keep its source value (stayed)?
    matches = conn.execute("SELECT DISTINCT tbl, col, id, cell, h::text FROM oo_match").fetchall()
    stayed: set[tuple[str, str, int | None, str]] = set()
    by_cell: dict[tuple[str, str], list[int]] = {}
    for tbl, col, row_id, _cell, _h in matches:
        if row_id is not None:
            by_cell.setdefault((tbl, col), []).append(int(row_id))
    for (tbl, col_name), ids in by_cell.items():
        types = dict(src_text.get(tbl, []))
        if col_name not in types or tbl not in src_ids:
            continue
        item, v = _values(tbl, col_name, types[col_name])
        q = sql.SQL("SELECT t.id, x.h::text FROM {t} t, {i}, LATERAL ({e}) x WHERE t.id = ANY(%s)").format(
            t=sql.Identifier(tbl), i=item, e=_extract(v))
        for row_id, h in source.execute(q, (sorted(set(ids)),)).fetchall():
            stayed.add((tbl, col_name, int(row_id), h))
    # A cell stayed when the copy's cell holds a value its source cell held (the source's other values don't count).
    stayed &= {(t, c, int(i), h) for t, c, i, _cell, h in matches if i is not None}
    # Every row of a masked column (but the kept ones, whose values are not looked for) was rewritten by
    # the masker: a value there that did not stay is the masker's. Those values, found elsewhere, are
    # the masker's output too (G, as far as it meets the source's values).
    masked = {key for key, col in dst_cols.items() if col.rule.kind not in LOW_KINDS}
    generated = {h for tbl, col, row_id, _cell, h in matches if (tbl, col) in masked
                 and (row_id is None or (tbl, col, int(row_id), h) not in stayed)}
    # A cell (one column of one row) counts once: as a leak if any of its values is one, else as chance.
    verdicts: dict[tuple[str, str, str], tuple[str, int | None]] = {}
    for tbl, col, row_id, cell, h in matches:
        if row_id is not None and (tbl, col, int(row_id), h) in stayed:
            verdict = "stayed"
        elif (tbl, col) in masked or h in generated:
            verdict = "chance"
        else:
            verdict = "from source"
        previous = verdicts.get((tbl, col, cell))
        if previous is None or previous[0] == "chance":
            verdicts[(tbl, col, cell)] = (verdict, row_id)
    leaks: dict[str, int] = {}
    chance: dict[str, int] = {}
    examples: list[dict[str, Any]] = []
    for (tbl, col_name, _cell), (verdict, row_id) in sorted(verdicts.items(), key=lambda kv: (kv[0], kv[1][1] or 0)):
        place = f"{tbl}.{col_name}"
        bucket = chance if verdict == "chance" else leaks
        bucket[place] = bucket.get(place, 0) + 1
        if verdict != "chance" and len(examples) < 20:
            examples.append({"table": tbl, "column": col_name, "id": row_id, "reason": verdict})
    # 5. Low-entropy columns, cell by cell.
    conn.execute("ANALYZE oo_low")
    for (table, column), col in sorted(dst_cols.items()):
        if col.rule.kind not in LOW_KINDS or table not in dst_ids:
            continue
        n = int(cast(tuple[Any, ...], conn.execute(sql.SQL(
            "SELECT count(*) FROM {t} t JOIN oo_low l ON l.tbl = {tl} AND l.col = {cl} AND l.id = t.id "
            "WHERE t.{c} IS NOT NULL AND md5(lower(btrim(t.{c}::text)))::uuid = l.h").format(
            t=sql.Identifier(table), tl=sql.Literal(table), cl=sql.Literal(column),
            c=sql.Identifier(column))).fetchone())[0])
        if n:
            leaks[f"{table}.{column}"] = leaks.get(f"{table}.{column}", 0) + n
            if len(examples) < 20:
                examples.append({"table": table, "column": column, "id": None, "reason": "stayed"})
    phases["judge"] = time.monotonic() - started - sum(phases.values())
    # 6. The filestore: no file shared with the source, no personal value in a text file.
    files = _scan_files(conn, filestore, source_filestore, generated) if filestore is not None else {}
    for where, n in files.get("leaks", {}).items():
        leaks[where] = leaks.get(where, 0) + n
    for where, n in files.get("chance", {}).items():
        chance[where] = chance.get(where, 0) + n
    conn.execute("DROP TABLE IF EXISTS oo_pii, oo_low, oo_match")
    conn.execute("RESET work_mem")
    phases["files"] = time.monotonic() - started - sum(phases.values())
    hardlinked = int(files.get("hardlinked", 0))
    total_leaks = sum(leaks.values())
    return {"ok": total_leaks == 0 and hardlinked == 0, "leaks": total_leaks, "chance": sum(chance.values()),
            "leaked": leaks, "chance_equal": chance, "examples": examples, "personal_values": personal,
            "tables_scanned": len(tables), "columns_scanned": columns_scanned,
            "files_scanned": int(files.get("text_files", 0)), "hardlinked_files": hardlinked,
            "truncated": len(matches) >= MAX_MATCHES, "seconds": round(time.monotonic() - started, 3),
            "phases": {k: round(v, 3) for k, v in phases.items()}}


def file_tokens(data: bytes) -> set[str]:
    """The comparable forms (md5 hex) of the e-mails and phone numbers in a text file."""
    out = {_hash(m.group(0).decode("utf-8", "replace").lower()) for m in _EMAIL.finditer(data)}
    for m in _PHONE.finditer(data):
        digits = re.sub(rb"\D", b"", m.group(0))
        if 8 <= len(digits) <= 15:
            out.add(_hash("tel:" + digits.decode()))
    return out


def _is_text(head: bytes) -> bool:
    if b"\0" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start > len(head) - 4  # a multi-byte character cut at the end of the sample
    return True


def _inodes(root: Path | None) -> set[tuple[int, int]]:
    out: set[tuple[int, int]] = set()
    if root is None or not root.is_dir():
        return out
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            st = os.lstat(os.path.join(dirpath, name))
            out.add((st.st_dev, st.st_ino))
    return out


def _scan_files(conn: psycopg.Connection[Any], filestore: Path, source_filestore: Path | None,
                generated: Iterable[str]) -> dict[str, Any]:
    source_inodes = _inodes(source_filestore)
    hardlinked = 0
    text_files = 0
    tokens: list[tuple[str, str]] = []
    for dirpath, _dirs, names in os.walk(filestore):
        for name in names:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            if (st.st_dev, st.st_ino) in source_inodes:
                hardlinked += 1
            if not os.path.isfile(path) or st.st_size > MAX_FILE_BYTES:
                continue
            with open(path, "rb") as fh:
                head = fh.read(4096)
                if not _is_text(head):
                    continue
                data = head + fh.read()
            text_files += 1
            rel = os.path.relpath(path, filestore)
            tokens.extend((rel, h) for h in file_tokens(data))
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS oo_file_tokens (fname text, h uuid)")
    conn.execute("TRUNCATE oo_file_tokens")
    with conn.cursor().copy("COPY oo_file_tokens (fname, h) FROM STDIN") as cp:
        for row in tokens:
            cp.write_row(row)
    found = conn.execute("SELECT fname, h::text FROM oo_file_tokens WHERE h IN (SELECT h FROM oo_pii)").fetchall()
    conn.execute("DROP TABLE oo_file_tokens")
    gen = set(generated)
    leaks: dict[str, int] = {}
    chance: dict[str, int] = {}
    for fname, h in found:
        bucket = chance if h in gen else leaks
        bucket[f"filestore:{fname}"] = bucket.get(f"filestore:{fname}", 0) + 1
    return {"hardlinked": hardlinked, "text_files": text_files, "leaks": leaks, "chance": chance}


def explain(result: Mapping[str, Any]) -> str:
    """One line for an error message: where the leaks are."""
    parts = [f"{where}: {n}" for where, n in sorted((result.get("leaked") or {}).items())]
    if result.get("hardlinked_files"):
        parts.append(f"{result['hardlinked_files']} filestore file(s) still hardlinked to the source's")
    return ", ".join(parts) or "none"


__all__ = ["file_tokens", "scan_clone"]
