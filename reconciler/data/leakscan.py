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
from pathlib import Path
from typing import Any, cast

from reconciler.data.catalogue import Catalogue
from reconciler.data.masking import Column, applicable, keep_condition
from reconciler.executors.leakscan_sql import (
    EMAIL_RE,
    PHONE_RE,
    Source,
    cell_hashes,
    copy_hashes,
    copy_low_values,
    insert_matches,
    low_values_kept,
)
from reconciler.executors.sql import Connection, copy_rows

_EMAIL = re.compile(EMAIL_RE.encode())
_PHONE = re.compile(PHONE_RE.encode())
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


def _catalogue_sources(cols: list[Column]) -> list[Source]:
    out = []
    for col in cols:
        kind = col.rule.kind
        whole = kind in WHOLE_KINDS and kind != "login"
        # Admin-like logins (no @) are kept on purpose: only addresses count.
        out.append(Source(col.rule.column, whole=whole, names_only=kind == "name", addresses_only=kind == "login"))
        if col.data_type == "jsonb" and whole:
            out.append(Source(col.rule.column, whole=True, names_only=kind == "name", jsonb=True))
    return out


def _table_sources(cols: list[tuple[str, str]]) -> list[Source]:
    out = [Source(column, whole=data_type != "jsonb") for column, data_type in cols]
    out += [Source(column, jsonb=True) for column, data_type in cols if data_type == "jsonb"]
    return out


def _by_table(cols: Mapping[tuple[str, str], Column]) -> dict[str, list[Column]]:
    out: dict[str, list[Column]] = {}
    for (table, _column), col in sorted(cols.items()):
        if col.rule.kind not in LOW_KINDS:
            out.setdefault(table, []).append(col)
    return out


def _text_columns(conn: Connection) -> dict[str, list[tuple[str, str]]]:
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


def _ids(conn: Connection) -> set[str]:
    return {r[0] for r in conn.execute("SELECT table_name FROM information_schema.columns WHERE table_schema = "
                                       "'public' AND column_name = 'id' AND data_type IN ('integer', 'bigint')")}


def scan_clone(conn: Connection, source: Connection, catalogue: Catalogue, *,
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
                copy_low_values(source, conn, table, col.rule.column, src_keep.get(table))
            continue
    for table, cols in _by_table(src_cols).items():
        sources = _catalogue_sources(cols)
        keep = src_keep.get(table)
        copy_hashes(source, conn, table, sources, f"NOT ({keep})" if keep else None, "oo_pii")
        if keep is not None:
            copy_hashes(source, conn, table, sources, keep, "oo_kept")
    # Strings shipped with Odoo's modules (views, module descriptions, menus, templates) are not anyone's
    # data: a partner whose e-mail equals the one in a website snippet does not make every copy fail.
    src_text = _text_columns(source)
    for table in MODULE_DATA_TABLES:
        if table in src_text:
            copy_hashes(source, conn, table, _table_sources(src_text[table]), None, "oo_kept")
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
        insert_matches(conn, table, _table_sources(text_cols), table in dst_ids, MAX_MATCHES)
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
        for row_id, h in cell_hashes(source, tbl, col_name, types[col_name], sorted(set(ids))):
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
        n = low_values_kept(conn, table, column)
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


def _scan_files(conn: Connection, filestore: Path, source_filestore: Path | None,
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
    copy_rows(conn, "COPY oo_file_tokens (fname, h) FROM STDIN", tokens)
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
