"""Masking of personal data in a database copy: catalogue-driven, keyed, deterministic, set-based SQL."""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from faker.providers.address.en_US import Provider as AddressProvider
from faker.providers.person.en_US import Provider as PersonProvider

from reconciler.core.projects import ProjectName, project_secret_scope
from reconciler.data.catalogue import DEFAULT_VERSION, Catalogue, MaskRule, load_catalogue
from reconciler.data.fake_phones import CALLING_CODES, FALLBACK_CODE, pools
from reconciler.errors import OdooOpsError
from reconciler.executors.masking_sql import TEXT_TYPES, phone_source_table, table_update
from reconciler.executors.sql import Connection, copy_rows, database_errors, statement
from reconciler.secrets import SecretStore

# The kinds .odooops.yaml accepts (schemas/odooops.schema.json masking.rules[].kind) plus internal ones.
KINDS = ("name", "email", "phone", "street", "zip", "city", "vat", "iban", "text", "digits", "null", "hash")
INTERNAL_KINDS = ("login", "url", "phone_e164")
PHONE_KINDS = frozenset({"phone", "phone_e164"})
# Kinds with few possible fakes: a fake may equal another row's real value, so verification
# compares them row by row (same id) instead of against every source value.
LOW_ENTROPY_KINDS = frozenset({"zip", "city", "digits"})
_IDENT = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")

# Vocabularies of fake values: Faker's en_US provider data (a maintained library, not our own lists).
FIRST: tuple[str, ...] = tuple(PersonProvider.first_names)
LAST: tuple[str, ...] = tuple(PersonProvider.last_names)
STREET_SUFFIXES: tuple[str, ...] = tuple(dict.fromkeys(AddressProvider.street_suffixes))
CITY_SUFFIXES: tuple[str, ...] = tuple(dict.fromkeys(AddressProvider.city_suffixes))

CATALOGUE = load_catalogue(DEFAULT_VERSION)
DEFAULT_RULES: tuple[MaskRule, ...] = CATALOGUE.rules

# Secrets a copy must not keep: (table, column or None for "delete every row", what it becomes).
SECRET_CUTS: tuple[tuple[str, str | None, str], ...] = (
    ("res_users_apikeys", None, "delete"), ("auth_passkey_key", None, "delete"),
    ("res_users", "password", "null"), ("res_users", "totp_secret", "null"),
    ("res_users", "oauth_access_token", "null"), ("auth_oauth_provider", "client_secret", "null"),
    ("iap_account", "account_token", "random"), ("fetchmail_server", "password", "null"),
    ("ir_mail_server", "smtp_pass", "null"),
)

# PL/pgSQL (plans cached per session) with the keyed hash computed once per value: SQL-language
# functions with sub-selects are not inlined and cost ~100 us per call; these cost a few us.
_FUNCTIONS = """
CREATE OR REPLACE FUNCTION pg_temp.oo_h(v text, k text) RETURNS text LANGUAGE sql IMMUTABLE AS
$$ SELECT encode(sha512(convert_to(k || chr(31) || v, 'UTF8')), 'hex') $$;
CREATE OR REPLACE FUNCTION pg_temp.oo_n(h text, pos integer, n integer) RETURNS integer LANGUAGE sql IMMUTABLE AS
$$ SELECT (('x' || substr(h, pos, 8))::bit(32)::bigint %% n)::integer + 1 $$;
-- Format-preserving: digits stay digits, lower/upper letters stay so, everything else is kept.
-- Each character maps through a keyed table, so a short value ("1000") could map to itself (1 in 64
-- for two distinct digits): the table is then derived again, up to 8 times, until the value changed.
CREATE OR REPLACE FUNCTION pg_temp.oo_fpk(v text, seed text, k text) RETURNS text LANGUAGE plpgsql IMMUTABLE
STRICT AS $$ DECLARE h text; r text; s text := seed; BEGIN
  FOR attempt IN 1..8 LOOP
    h := pg_temp.oo_h(s, k);
    r := translate(v, '0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ',
         translate(substr(h, 1, 10), 'abcdef', '012345')
         || translate(substr(h, 11, 26), '0123456789abcdef', 'bcdfghjklmnprstv')
         || translate(substr(h, 37, 26), '0123456789abcdef', 'AEIOUBCDFGKLMNRT'));
    IF r <> v OR v !~ '[0-9A-Za-z]' THEN RETURN r; END IF;
    s := s || chr(30);
  END LOOP;
  RETURN r;
END $$;
CREATE OR REPLACE FUNCTION pg_temp.oo_fp(v text, k text) RETURNS text LANGUAGE plpgsql IMMUTABLE STRICT AS
$$ BEGIN RETURN pg_temp.oo_fpk(v, v, k); END $$;
-- Names, streets and cities come from Faker's vocabularies; a fake equal to its own source (a real
-- "James Smith" drawing "James Smith") is drawn again with another seed.
CREATE OR REPLACE FUNCTION pg_temp.oo_name(v text, k text) RETURNS text LANGUAGE plpgsql IMMUTABLE STRICT AS
$$ DECLARE h text; r text; s text := v; BEGIN
  IF v = '' THEN RETURN v; END IF;
  FOR attempt IN 1..8 LOOP
    h := pg_temp.oo_h(s, k);
    r := (%(first)s)[pg_temp.oo_n(h, 1, %(nfirst)s)] || ' ' || (%(last)s)[pg_temp.oo_n(h, 9, %(nlast)s)];
    IF lower(r) <> lower(btrim(v)) THEN RETURN r; END IF;
    s := s || chr(30);
  END LOOP;
  RETURN r || ' ' || substr(h, 1, 4);
END $$;
CREATE OR REPLACE FUNCTION pg_temp.oo_one_email(a text, k text) RETURNS text LANGUAGE plpgsql IMMUTABLE STRICT AS
$$ DECLARE h text := pg_temp.oo_h(lower(btrim(a)), k); BEGIN
  RETURN lower((%(first)s)[pg_temp.oo_n(h, 1, %(nfirst)s)]) || '.' || lower((%(last)s)[pg_temp.oo_n(h, 9, %(nlast)s)])
         || '.' || substr(h, 17, 8) || '@example.invalid';
END $$;
-- Every address in the value (plain, "Name <a@b>", lists) becomes a fake one; display names go.
CREATE OR REPLACE FUNCTION pg_temp.oo_email(v text, k text) RETURNS text LANGUAGE plpgsql IMMUTABLE STRICT AS
$$ DECLARE r text; BEGIN
  IF v = '' THEN RETURN v; END IF;
  IF v ~ '^\\s*[^\\s<>",;()\\[\\]@]+@[^\\s<>",;()\\[\\]@]+\\s*$' THEN
    RETURN pg_temp.oo_one_email(v, k);  -- the common case: one plain address
  END IF;
  SELECT string_agg(pg_temp.oo_one_email(m[1], k), ',' ORDER BY o) INTO r
    FROM regexp_matches(v, '([^\\s<>",;()\\[\\]]+@[^\\s<>",;()\\[\\]]+)', 'g') WITH ORDINALITY AS t(m, o);
  RETURN coalesce(r, pg_temp.oo_one_email(v, k));
END $$;
-- Logins without an @ (admin, __system__) are not personal: kept so people can still sign in.
CREATE OR REPLACE FUNCTION pg_temp.oo_login(v text, k text) RETURNS text LANGUAGE plpgsql IMMUTABLE STRICT AS
$$ BEGIN IF strpos(v, '@') > 0 THEN RETURN pg_temp.oo_email(v, k); END IF; RETURN v; END $$;
-- Phones come from the oo_phone_map table apply_masking builds (valid numbers, phonenumbers' metadata);
-- this lookup serves tables without an id column, the others join the map in their UPDATE.
CREATE OR REPLACE FUNCTION pg_temp.oo_phone(v text, k text) RETURNS text LANGUAGE plpgsql STABLE STRICT AS
$$ DECLARE r text; BEGIN
  IF v = '' THEN RETURN v; END IF;
  SELECT intl INTO r FROM oo_phone_map WHERE src = v;
  RETURN coalesce(r, pg_temp.oo_fpk(v, v, k));
END $$;
CREATE OR REPLACE FUNCTION pg_temp.oo_phone_e164(v text, k text) RETURNS text LANGUAGE plpgsql STABLE STRICT AS
$$ DECLARE r text; BEGIN
  IF v = '' THEN RETURN v; END IF;
  SELECT e164 INTO r FROM oo_phone_map WHERE src = v;
  RETURN coalesce(r, pg_temp.oo_fpk(v, v, k));
END $$;
CREATE OR REPLACE FUNCTION pg_temp.oo_digits(v text, k text) RETURNS text LANGUAGE plpgsql IMMUTABLE STRICT AS
$$ BEGIN RETURN pg_temp.oo_fpk(v, v, k); END $$;
CREATE OR REPLACE FUNCTION pg_temp.oo_zip(v text, k text) RETURNS text LANGUAGE plpgsql IMMUTABLE STRICT AS
$$ BEGIN RETURN pg_temp.oo_fpk(v, v, k); END $$;
CREATE OR REPLACE FUNCTION pg_temp.oo_street(v text, k text) RETURNS text LANGUAGE plpgsql IMMUTABLE STRICT AS
$$ DECLARE h text; BEGIN
  IF v = '' THEN RETURN v; END IF;
  h := pg_temp.oo_h(v, k);
  RETURN (pg_temp.oo_n(h, 1, 9899) + 100)::text || ' ' || (%(last)s)[pg_temp.oo_n(h, 9, %(nlast)s)]
         || ' ' || (%(suffixes)s)[pg_temp.oo_n(h, 17, %(nsuffixes)s)];
END $$;
CREATE OR REPLACE FUNCTION pg_temp.oo_city(v text, k text) RETURNS text LANGUAGE plpgsql IMMUTABLE STRICT AS
$$ DECLARE h text; r text; s text := v; BEGIN
  IF v = '' THEN RETURN v; END IF;
  FOR attempt IN 1..8 LOOP
    h := pg_temp.oo_h(s, k);
    r := (%(first)s)[pg_temp.oo_n(h, 1, %(nfirst)s)] || (%(csuffixes)s)[pg_temp.oo_n(h, 9, %(ncsuffixes)s)];
    IF lower(r) <> lower(btrim(v)) THEN RETURN r; END IF;
    s := s || chr(30);
  END LOOP;
  RETURN r;
END $$;
-- VAT and IBAN keep their country prefix; the fake depends on the normalised value, so masking
-- acc_number and sanitized_acc_number separately still gives matching pairs.
CREATE OR REPLACE FUNCTION pg_temp.oo_vat(v text, k text) RETURNS text LANGUAGE plpgsql IMMUTABLE STRICT AS
$$ DECLARE seed text := upper(regexp_replace(v, '[^0-9A-Za-z]', '', 'g')); BEGIN
  IF v ~ '^[A-Za-z]{2}' THEN RETURN left(v, 2) || pg_temp.oo_fpk(substr(v, 3), seed, k); END IF;
  RETURN pg_temp.oo_fpk(v, seed, k);
END $$;
CREATE OR REPLACE FUNCTION pg_temp.oo_iban(v text, k text) RETURNS text LANGUAGE plpgsql IMMUTABLE STRICT AS
$$ BEGIN RETURN pg_temp.oo_vat(v, k); END $$;
CREATE OR REPLACE FUNCTION pg_temp.oo_text(v text, k text) RETURNS text LANGUAGE plpgsql IMMUTABLE STRICT AS
$$ BEGIN IF v = '' THEN RETURN v; END IF; RETURN 'Masked text ' || substr(pg_temp.oo_h(v, k), 1, 12); END $$;
CREATE OR REPLACE FUNCTION pg_temp.oo_hash(v text, k text) RETURNS text LANGUAGE plpgsql IMMUTABLE STRICT AS
$$ BEGIN RETURN substr(pg_temp.oo_h(v, k), 1, 64); END $$;
CREATE OR REPLACE FUNCTION pg_temp.oo_url(v text, k text) RETURNS text LANGUAGE plpgsql IMMUTABLE STRICT AS
$$ BEGIN
  IF v = '' THEN RETURN v; END IF;
  RETURN 'https://' || substr(pg_temp.oo_h(v, k), 1, 10) || '.example.invalid';
END $$;
"""


def _array(values: tuple[str, ...]) -> str:
    return "ARRAY[" + ", ".join("'" + v.replace("'", "''") + "'" for v in values) + "]"


FUNCTIONS_SQL = _FUNCTIONS % {
    "first": _array(FIRST), "nfirst": len(FIRST), "last": _array(LAST), "nlast": len(LAST),
    "suffixes": _array(STREET_SUFFIXES), "nsuffixes": len(STREET_SUFFIXES),
    "csuffixes": _array(CITY_SUFFIXES), "ncsuffixes": len(CITY_SUFFIXES)}


def masking_key(secrets: SecretStore, project: ProjectName | None = None) -> str:
    """The per-project key: the same value masks to the same fake in every copy of this project (and
    another project's copies cannot be matched against this one's)."""
    return secrets.get_or_create(project_secret_scope(project), "masking_key")


def rules_from_config(raw: Iterable[Mapping[str, Any]] | None,
                      where: str = ".odooops.yaml masking.rules") -> list[MaskRule]:
    """Rules from `.odooops.yaml` (EnvSpec setting `masking_rules`), checked again: they end up in SQL."""
    out: list[MaskRule] = []
    for index, item in enumerate(raw or []):
        table, column, kind = str(item.get("table", "")), str(item.get("column", "")), str(item.get("kind", ""))
        if not (_IDENT.match(table) and _IDENT.match(column)) or kind not in KINDS:
            raise OdooOpsError("MASK_RULE_INVALID", f"{where}/{index}: {dict(item)} is not a valid masking rule",
                               f"use table and column names of the database and a kind among {', '.join(KINDS)}",
                               {"pointer": f"/masking/rules/{index}"})
        out.append(MaskRule(table, column, kind))
    return out


def merged_rules(extra: Iterable[MaskRule] = (), catalogue: Catalogue = CATALOGUE) -> list[MaskRule]:
    """The catalogue's rules plus the project's; a project rule for the same column wins."""
    return list(catalogue.with_rules(list(extra)).rules)


def install_functions(conn: Connection) -> None:
    """The mask functions live in this session's pg_temp: nothing is left in the copy afterwards."""
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS oo_phone_map (src text PRIMARY KEY, intl text, e164 text)")
    conn.execute(FUNCTIONS_SQL)


@dataclass(frozen=True)
class Column:
    rule: MaskRule
    data_type: str
    max_length: int | None
    nullable: bool


def applicable(conn: Connection, rules: Iterable[MaskRule]) -> list[Column]:
    """The rules whose table and column exist in this database (Odoo versions and modules differ)."""
    rows = conn.execute("SELECT c.table_name, c.column_name, c.data_type, c.character_maximum_length, "
                        "c.is_nullable = 'YES' FROM information_schema.columns c JOIN information_schema.tables t "
                        "ON t.table_schema = c.table_schema AND t.table_name = c.table_name "
                        "WHERE c.table_schema = 'public' AND t.table_type = 'BASE TABLE'").fetchall()
    found = {(t, c): (d, n, nullable) for t, c, d, n, nullable in rows}
    out = []
    for rule in rules:
        info = found.get((rule.table, rule.column))
        if info is None:
            continue
        if info[0] not in TEXT_TYPES and info[0] != "jsonb" and rule.kind != "null":
            continue  # a number or date column cannot hold these kinds of values
        if rule.kind == "null" and not info[2] and info[0] not in TEXT_TYPES and info[0] != "jsonb":
            continue  # a NOT NULL number or date: nothing sensible to put there
        out.append(Column(rule, info[0], info[1], bool(info[2])))
    return out


def keep_condition(catalogue: Catalogue | None, table: str, conn: Connection) -> str | None:
    """The catalogue's "rows that are not personal data" condition of `table`, when its tables exist."""
    cond = (catalogue.keep_rows if catalogue else {}).get(table)
    if not cond:
        return None
    needed = {"res_company", "res_users"} & set(re.findall(r"\b(res_\w+)\b", cond))
    have = {r[0] for r in conn.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = "
                                       "'public' AND table_name = ANY(%s)", (list(needed),)).fetchall()}
    if needed - have:
        return None
    return cond  # reviewed package data (the catalogue), never project input


def _default_calling_code(conn: Connection) -> int:
    """Numbers written without a country code belong to the main company's country (else +1)."""
    try:
        with database_errors(), conn.transaction():
            row = conn.execute("SELECT c.phone_code FROM res_company co JOIN res_country c ON c.id = co.country_id "
                               "WHERE c.phone_code IS NOT NULL ORDER BY co.id LIMIT 1").fetchone()
    except OdooOpsError:
        return FALLBACK_CODE
    return int(row[0]) if row and row[0] else FALLBACK_CODE


def build_phone_map(conn: Connection, key: str, columns: list[Column],
                    keeps: Mapping[str, str | None]) -> int:
    """oo_phone_map(src -> international form, E.164) for every distinct phone value of `columns`, set-based:
    distinct values and their calling codes in SQL, one pool of valid numbers per calling code in Python
    (phonenumbers), then a keyed pick per value in SQL. The same source value (and the same number written
    differently: "+32 2 555 01 01", "+3225550101") gets the same fake, never its own number."""
    conn.execute("TRUNCATE oo_phone_map")
    if not columns:
        return 0
    default = _default_calling_code(conn)
    conn.execute("DROP TABLE IF EXISTS oo_phone_src, oo_phone_pool, oo_cc")
    conn.execute("CREATE TEMP TABLE oo_cc (code text PRIMARY KEY)")
    copy_rows(conn, "COPY oo_cc (code) FROM STDIN", ((str(code),) for code in CALLING_CODES))
    conn.execute(phone_source_table(columns, keeps))
    # Local numbers ("0470 12 34 56") take the default country; their full form drops the trunk 0.
    conn.execute("UPDATE oo_phone_src SET cc = %s, d = %s || ltrim(d, '0') WHERE cc IS NULL",
                 (str(default), str(default)))
    needed = {int(cc): int(n) for cc, n in conn.execute("SELECT cc, count(*) FROM oo_phone_src GROUP BY cc")}
    pool = pools(needed, key)
    conn.execute("CREATE TEMP TABLE oo_phone_pool (cc text, idx integer, intl text, e164 text, "
                 "PRIMARY KEY (cc, idx))")
    copy_rows(conn, "COPY oo_phone_pool (cc, idx, intl, e164) FROM STDIN",
              ((str(code), idx, intl, e164) for code, numbers in pool.items()
               for idx, (intl, e164) in enumerate(numbers)))
    conn.execute("UPDATE oo_phone_src SET cc = %s WHERE cc NOT IN (SELECT DISTINCT cc FROM oo_phone_pool)",
                 (str(FALLBACK_CODE),))
    conn.execute("ANALYZE oo_phone_src; ANALYZE oo_phone_pool")
    # The pick is keyed on the number (digits), not on how it is written; the next pool entry is used
    # when the pick is the source number itself.
    cur = conn.execute(
        "INSERT INTO oo_phone_map (src, intl, e164) "
        "SELECT s.src, CASE WHEN p.e164 = '+' || s.d THEN q.intl ELSE p.intl END, "
        "CASE WHEN p.e164 = '+' || s.d THEN q.e164 ELSE p.e164 END FROM ("
        "  SELECT src, d, cc, (('x' || substr(md5(%(k)s || chr(31) || d), 1, 8))::bit(32)::bigint %% n.n)::integer "
        "  AS idx, n.n FROM oo_phone_src JOIN (SELECT cc AS ncc, count(*) AS n FROM oo_phone_pool GROUP BY cc) n "
        "  ON n.ncc = cc) s "
        "JOIN oo_phone_pool p ON p.cc = s.cc AND p.idx = s.idx "
        "JOIN oo_phone_pool q ON q.cc = s.cc AND q.idx = (s.idx + 1) %% s.n", {"k": key})
    conn.execute("ANALYZE oo_phone_map")
    conn.execute("DROP TABLE oo_phone_src, oo_phone_pool, oo_cc")
    return cur.rowcount


def _has_id(conn: Connection, table: str) -> bool:
    return conn.execute("SELECT 1 FROM information_schema.columns WHERE table_schema = 'public' AND table_name = %s "
                        "AND column_name = 'id'", (table,)).fetchone() is not None


def _phone_columns(conn: Connection, table: str, cols: list[Column]) -> tuple[list[Column], list[str]]:
    """The phone columns of the table that take their value from oo_phone_map, and the columns joined with it
    (theirs and those they derive from, where they exist)."""
    phones = [c for c in cols if c.rule.kind in PHONE_KINDS and c.data_type in TEXT_TYPES]
    if phones and not _has_id(conn, table):
        phones = []  # the per-value lookup function serves these
    joined: list[str] = []
    for c in phones:
        for name in (c.rule.column, *c.rule.derive_from):
            if name not in joined:
                joined.append(name)
    existing = {r[0] for r in conn.execute("SELECT column_name FROM information_schema.columns WHERE table_schema = "
                                           "'public' AND table_name = %s", (table,)).fetchall()}
    return phones, [name for name in joined if name in existing]


def delete_tables(conn: Connection, tables: Iterable[str]) -> dict[str, int]:
    """Empty the catalogue's log and transient tables that exist (base tables only, never views)."""
    wanted = list(tables)
    found = [r[0] for r in conn.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = "
                                        "'public' AND table_type = 'BASE TABLE' AND table_name = ANY(%s) "
                                        "ORDER BY table_name", (wanted,)).fetchall()]
    return {t: conn.execute(statement("DELETE FROM {}", t)).rowcount for t in found}


def apply_masking(conn: Connection, key: str, rules: Iterable[MaskRule],
                  catalogue: Catalogue | None = None) -> dict[str, Any]:
    """Mask every applicable column with one UPDATE per table (phones through one mapping table), leave the
    catalogue's kept rows alone and empty its log tables; returns {"columns", "rows", "deleted", "phones"}."""
    install_functions(conn)
    columns = applicable(conn, rules)
    by_table: dict[str, list[Column]] = {}
    for col in columns:
        by_table.setdefault(col.rule.table, []).append(col)
    keeps = {table: keep_condition(catalogue, table, conn) for table in by_table}
    phones = build_phone_map(conn, key, [c for c in columns if c.rule.kind in PHONE_KINDS
                                         and c.data_type in TEXT_TYPES], keeps)
    rows: dict[str, int] = {}
    for table, cols in sorted(by_table.items()):
        phones_here, joined = _phone_columns(conn, table, cols)
        cur = conn.execute(table_update(table, cols, phones_here, joined, keeps[table]), {"k": key})
        rows[table] = cur.rowcount
    deleted = delete_tables(conn, catalogue.deletes) if catalogue else {}
    return {"columns": [f"{c.rule.table}.{c.rule.column}" for c in columns], "rows": rows,
            "applied": [c.rule for c in columns], "deleted": deleted, "phones": phones}


def cut_secrets(conn: Connection) -> dict[str, int]:
    """Delete API keys and passkeys, reset passwords, clear OAuth/IAP/mail secrets (where they exist)."""
    rows = conn.execute("SELECT table_name, column_name FROM information_schema.columns "
                        "WHERE table_schema = 'public'").fetchall()
    tables = {t for t, _c in rows}
    cols = set(rows)
    done: dict[str, int] = {}
    for table, column, action in SECRET_CUTS:
        if table not in tables or (column is not None and (table, column) not in cols):
            continue
        if column is None:
            cur = conn.execute(statement("DELETE FROM {}", table))
            done[table] = cur.rowcount
            continue
        value = "NULL" if action == "null" else ("left(md5(random()::text || clock_timestamp()::text)"
                                                 " || md5(random()::text), 43)")
        cur = conn.execute(statement(f"UPDATE {{}} SET {{}} = {value} WHERE {{}} IS NOT NULL", table, column, column))
        done[f"{table}.{column}"] = cur.rowcount
    return done


PLACEHOLDER_TEXT = b"This attachment was replaced when the database was masked.\n"
# A 1x1 transparent PNG: image fields keep rendering.
PLACEHOLDER_PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000"
                                "1f15c4890000000d4944415478da63f8ffff3f0005fe02fea7d605ba00"
                                "00000049454e44ae426082")
# Attachments of the web client and modules (assets, views) are code, not personal data.
_KEEP_ATTACHMENTS = ("coalesce(res_model, '') NOT IN ('', 'ir.ui.view', 'ir.ui.menu', 'ir.module.module', "
                     "'res.lang') AND coalesce(url, '') NOT LIKE '/web/%%'")


# Attachments whose bytes are text (and whose text Odoo indexed): cheap to replace, and where names,
# e-mails and phones of people are readable as they are.
TEXT_ATTACHMENTS = ("(coalesce(mimetype, '') LIKE 'text/%%' OR mimetype IN ('application/json', 'application/xml', "
                    "'application/csv', 'application/x-vcard', 'application/vnd.ms-outlook'){indexed})")


def replace_attachments(conn: Connection, filestore: Path, scope: str = "all") -> dict[str, int]:
    """Give personal attachments placeholder contents (scope "all": every attachment of a record; "text":
    text-like ones only, binaries keep their bytes in the copy's own files); their old files are unlinked
    from this copy's filestore only (they may be links shared with the source: never written through)."""
    if not conn.execute("SELECT 1 FROM information_schema.tables WHERE table_schema = 'public' "
                        "AND table_name = 'ir_attachment'").fetchone():
        return {"attachments": 0, "files_unlinked": 0}
    indexed = " OR index_content IS NOT NULL" if conn.execute(
        "SELECT 1 FROM information_schema.columns WHERE table_schema = 'public' AND table_name = 'ir_attachment' "
        "AND column_name = 'index_content'").fetchone() else ""
    text_like = TEXT_ATTACHMENTS.format(indexed=indexed)
    which = _KEEP_ATTACHMENTS if scope == "all" else f"{_KEEP_ATTACHMENTS} AND {text_like}"
    old = {r[0] for r in conn.execute(f"SELECT DISTINCT store_fname FROM ir_attachment WHERE type = 'binary' "
                                      f"AND store_fname IS NOT NULL AND {which}").fetchall()}
    total = 0
    for is_image, data in ((True, PLACEHOLDER_PNG), (False, PLACEHOLDER_TEXT)):
        sha1 = hashlib.sha1(data).hexdigest()  # Odoo names filestore files by SHA-1 of the contents
        fname = f"{sha1[:2]}/{sha1}"
        path = filestore / fname
        if not path.exists():
            _mkdir_like(filestore, path.parent)
            path.write_bytes(data)
            _like_parent(path)
        image = "coalesce(mimetype, '') LIKE 'image/%%'"
        cur = conn.execute(
            f"UPDATE ir_attachment SET store_fname = CASE WHEN store_fname IS NULL THEN NULL ELSE %(f)s END, "
            f"db_datas = CASE WHEN db_datas IS NULL THEN NULL ELSE %(d)s END, checksum = %(c)s, file_size = %(n)s "
            f"WHERE type = 'binary' AND {which} AND {image if is_image else 'NOT ' + image}",
            {"f": fname, "d": data, "c": sha1, "n": len(data)})
        total += cur.rowcount
    still = {r[0] for r in conn.execute("SELECT DISTINCT store_fname FROM ir_attachment "
                                        "WHERE store_fname IS NOT NULL").fetchall()}
    unlinked = 0
    for fname in old - still:
        path = filestore / fname
        if path.is_file() and path.resolve().is_relative_to(filestore.resolve()):
            path.unlink()  # removes this copy's link only; the source keeps its file
            unlinked += 1
    return {"attachments": total, "files_unlinked": unlinked}


def _mkdir_like(root: Path, folder: Path) -> None:
    """Create `folder` under `root` owned like `root` (Odoo's user): a folder this process made would be
    root's, and Odoo could not read the file in it (a copy whose source had no file under that SHA-1 prefix)."""
    st = root.stat()
    missing = []
    while not folder.exists() and folder != root:
        missing.append(folder)
        folder = folder.parent
    for made in reversed(missing):
        made.mkdir(mode=0o750)
        os.chown(made, st.st_uid, st.st_gid)


def _like_parent(path: Path) -> None:
    """New files get the owner of their directory (Odoo's user), so Odoo can garbage-collect them."""
    st = path.parent.stat()
    os.chown(path, st.st_uid, st.st_gid)
    os.chmod(path, 0o640)


__all__ = ["CATALOGUE", "DEFAULT_RULES", "KINDS", "MaskRule", "apply_masking", "build_phone_map", "cut_secrets",
           "masking_key", "merged_rules", "replace_attachments", "rules_from_config"]
