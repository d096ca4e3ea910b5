"""Masking of personal data in a database copy: keyed, deterministic, format-preserving, set-based SQL."""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from reconciler.errors import OdooOpsError
from reconciler.secrets import SecretStore

# The kinds .odooops.yaml accepts (schemas/odooops.schema.json masking.rules[].kind) plus internal ones.
KINDS = ("name", "email", "phone", "street", "zip", "city", "vat", "iban", "text", "digits", "null", "hash")
INTERNAL_KINDS = ("login", "url")
# Kinds with few possible fakes: a fake may equal another row's real value, so verification
# compares them row by row (same id) instead of against every source value.
LOW_ENTROPY_KINDS = frozenset({"zip", "city", "digits"})
_IDENT = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
TEXT_TYPES = frozenset({"character varying", "text", "character"})

FIRST = ("Alder", "Briar", "Cedar", "Dune", "Ember", "Fennel", "Garnet", "Hazel", "Indigo", "Juniper", "Kestrel",
         "Linden", "Maple", "Nettle", "Onyx", "Poppy", "Quill", "Rowan", "Sorrel", "Tansy", "Umber", "Vetch",
         "Willow", "Yarrow", "Zinnia", "Aster", "Bryony", "Clover", "Dahlia", "Elder", "Flint", "Gorse")
LAST = ("Quince", "Brackenby", "Cobblethwaite", "Dunmore", "Eddington", "Fairweather", "Gillingham", "Hollowell",
        "Ingleby", "Jessop", "Kettleby", "Lanmoor", "Merriwether", "Northwick", "Oakenshaw", "Pennyfeather",
        "Quarrington", "Ravensworth", "Saltmarsh", "Thistlewood", "Underhill", "Vantwell", "Wrenfield",
        "Yelverton", "Ashgrove", "Blackmere", "Coldharbour", "Dovecote", "Elmstead", "Foxcombe", "Greyfriars",
        "Harrowgate")
STREETS = ("Lantern", "Orchard", "Mill", "Heron", "Copper", "Meadow", "Quarry", "Beacon", "Tanner", "Weaver",
           "Harbour", "Thimble", "Lark", "Cinder", "Bramble", "Falcon")
SUFFIXES = ("Street", "Lane", "Road", "Way", "Row", "Close", "Avenue", "Walk")
CITIES = ("Brindlemoor", "Ashcombe Vale", "Fernhollow", "Millbrook Fen", "Quarrydown", "Thornwick", "Elmsgate",
          "Harrowmere", "Saltcombe", "Wrenbury Cross", "Oakhollow", "Pebbleford", "Kestrel Down", "Larkspur Bay",
          "Marrowdale", "Yewhurst")


@dataclass(frozen=True)
class MaskRule:
    table: str
    column: str
    kind: str


def _rules(table: str, **columns: str) -> list[MaskRule]:
    return [MaskRule(table, column, kind) for column, kind in columns.items()]


DEFAULT_RULES: tuple[MaskRule, ...] = tuple(
    _rules("res_partner", name="name", display_name="name", complete_name="name", commercial_company_name="name",
           email="email", email_normalized="email", phone="phone", mobile="phone", phone_sanitized="phone",
           street="street", street2="street", zip="zip", city="city", vat="vat", website="url", comment="text",
           signup_token="null")
    + _rules("res_users", login="login", signature="text", password="null", totp_secret="null",
             oauth_access_token="null", oauth_uid="null")
    + _rules("res_partner_bank", acc_number="iban", sanitized_acc_number="iban", acc_holder_name="name")
    + _rules("mail_message", subject="text", body="text", email_from="email", reply_to="email",
             record_name="name", message_id="hash")
    + _rules("mail_mail", body_html="text", email_to="email", email_cc="email", reply_to="email", headers="null")
    + _rules("mail_tracking_value", old_value_char="text", new_value_char="text", old_value_text="text",
             new_value_text="text")
    + _rules("sms_sms", number="phone", body="text")
    + _rules("hr_employee", name="name", private_email="email", private_phone="phone", private_street="street",
             private_street2="street", private_city="city", private_zip="zip", work_email="email",
             work_phone="phone", mobile_phone="phone", identification_id="digits", passport_id="digits",
             ssnid="digits", sinid="digits", permit_no="digits", emergency_contact="name",
             emergency_phone="phone"))

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
CREATE OR REPLACE FUNCTION pg_temp.oo_name(v text, k text) RETURNS text LANGUAGE plpgsql IMMUTABLE STRICT AS
$$ DECLARE h text; BEGIN
  IF v = '' THEN RETURN v; END IF;
  h := pg_temp.oo_h(v, k);
  RETURN (%(first)s)[pg_temp.oo_n(h, 1, %(nfirst)s)] || ' ' || (%(last)s)[pg_temp.oo_n(h, 9, %(nlast)s)];
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
CREATE OR REPLACE FUNCTION pg_temp.oo_phone(v text, k text) RETURNS text LANGUAGE plpgsql IMMUTABLE STRICT AS
$$ BEGIN RETURN pg_temp.oo_fpk(v, v, k); END $$;
CREATE OR REPLACE FUNCTION pg_temp.oo_digits(v text, k text) RETURNS text LANGUAGE plpgsql IMMUTABLE STRICT AS
$$ BEGIN RETURN pg_temp.oo_fpk(v, v, k); END $$;
CREATE OR REPLACE FUNCTION pg_temp.oo_zip(v text, k text) RETURNS text LANGUAGE plpgsql IMMUTABLE STRICT AS
$$ BEGIN RETURN pg_temp.oo_fpk(v, v, k); END $$;
CREATE OR REPLACE FUNCTION pg_temp.oo_street(v text, k text) RETURNS text LANGUAGE plpgsql IMMUTABLE STRICT AS
$$ DECLARE h text; BEGIN
  IF v = '' THEN RETURN v; END IF;
  h := pg_temp.oo_h(v, k);
  RETURN pg_temp.oo_n(h, 1, 199)::text || ' ' || (%(streets)s)[pg_temp.oo_n(h, 9, %(nstreets)s)]
         || ' ' || (%(suffixes)s)[pg_temp.oo_n(h, 17, %(nsuffixes)s)];
END $$;
CREATE OR REPLACE FUNCTION pg_temp.oo_city(v text, k text) RETURNS text LANGUAGE plpgsql IMMUTABLE STRICT AS
$$ BEGIN
  IF v = '' THEN RETURN v; END IF;
  RETURN (%(cities)s)[pg_temp.oo_n(pg_temp.oo_h(v, k), 1, %(ncities)s)];
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
    "streets": _array(STREETS), "nstreets": len(STREETS), "suffixes": _array(SUFFIXES),
    "nsuffixes": len(SUFFIXES), "cities": _array(CITIES), "ncities": len(CITIES)}


def masking_key(secrets: SecretStore) -> str:
    """The per-project key: the same value masks to the same fake in every copy of this project."""
    return secrets.get_or_create("_project", "masking_key")


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


def merged_rules(extra: Iterable[MaskRule] = ()) -> list[MaskRule]:
    """Defaults plus the project's rules; a project rule for the same column wins."""
    by_column = {(r.table, r.column): r for r in DEFAULT_RULES}
    by_column.update({(r.table, r.column): r for r in extra})
    return list(by_column.values())


def install_functions(conn: psycopg.Connection[Any]) -> None:
    """The mask functions live in this session's pg_temp: nothing is left in the copy afterwards."""
    conn.execute(FUNCTIONS_SQL)


@dataclass(frozen=True)
class Column:
    rule: MaskRule
    data_type: str
    max_length: int | None
    nullable: bool


def applicable(conn: psycopg.Connection[Any], rules: Iterable[MaskRule]) -> list[Column]:
    """The rules whose table and column exist in this database (Odoo versions and modules differ)."""
    rows = conn.execute("SELECT table_name, column_name, data_type, character_maximum_length, is_nullable = 'YES' "
                        "FROM information_schema.columns WHERE table_schema = 'public'").fetchall()
    found = {(t, c): (d, n, nullable) for t, c, d, n, nullable in rows}
    out = []
    for rule in rules:
        info = found.get((rule.table, rule.column))
        if info is None:
            continue
        if info[0] not in TEXT_TYPES and info[0] != "jsonb" and rule.kind != "null":
            continue  # a number or date column cannot hold these kinds of values
        out.append(Column(rule, info[0], info[1], bool(info[2])))
    return out


def mask_expression(col: Column) -> sql.Composable:
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
    if col.max_length:
        expr = sql.SQL("left({e}, {n})").format(e=expr, n=sql.Literal(col.max_length))
    return expr


def apply_masking(conn: psycopg.Connection[Any], key: str, rules: Iterable[MaskRule]) -> dict[str, Any]:
    """Mask every applicable column with one UPDATE per table; returns {"columns": [...], "rows": {...}}."""
    install_functions(conn)
    columns = applicable(conn, rules)
    by_table: dict[str, list[Column]] = {}
    for col in columns:
        by_table.setdefault(col.rule.table, []).append(col)
    rows: dict[str, int] = {}
    for table, cols in sorted(by_table.items()):
        assignments = sql.SQL(", ").join(
            sql.SQL("{} = {}").format(sql.Identifier(c.rule.column), mask_expression(c)) for c in cols)
        cur = conn.execute(sql.SQL("UPDATE {} SET {}").format(sql.Identifier(table), assignments), {"k": key})
        rows[table] = cur.rowcount
    return {"columns": [f"{c.rule.table}.{c.rule.column}" for c in columns], "rows": rows,
            "applied": [c.rule for c in columns]}


def cut_secrets(conn: psycopg.Connection[Any]) -> dict[str, int]:
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
            cur = conn.execute(sql.SQL("DELETE FROM {}").format(sql.Identifier(table)))
            done[table] = cur.rowcount
            continue
        value = sql.SQL("NULL") if action == "null" else sql.SQL("left(md5(random()::text || clock_timestamp()::text)"
                                                                   " || md5(random()::text), 43)")
        cur = conn.execute(sql.SQL("UPDATE {t} SET {c} = {v} WHERE {c} IS NOT NULL").format(
            t=sql.Identifier(table), c=sql.Identifier(column), v=value))
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


def replace_attachments(conn: psycopg.Connection[Any], filestore: Path) -> dict[str, int]:
    """Give personal attachments placeholder contents; their old files are unlinked from this copy's
    filestore only (they may be hardlinks shared with the source: never written through)."""
    if not conn.execute("SELECT 1 FROM information_schema.tables WHERE table_schema = 'public' "
                        "AND table_name = 'ir_attachment'").fetchone():
        return {"attachments": 0, "files_unlinked": 0}
    old = {r[0] for r in conn.execute(f"SELECT DISTINCT store_fname FROM ir_attachment WHERE type = 'binary' "
                                      f"AND store_fname IS NOT NULL AND {_KEEP_ATTACHMENTS}").fetchall()}
    total = 0
    for is_image, data in ((True, PLACEHOLDER_PNG), (False, PLACEHOLDER_TEXT)):
        sha1 = hashlib.sha1(data).hexdigest()  # Odoo names filestore files by SHA-1 of the contents
        fname = f"{sha1[:2]}/{sha1}"
        path = filestore / fname
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            _like_parent(path)
        image = "coalesce(mimetype, '') LIKE 'image/%%'"
        cur = conn.execute(
            f"UPDATE ir_attachment SET store_fname = CASE WHEN store_fname IS NULL THEN NULL ELSE %(f)s END, "
            f"db_datas = CASE WHEN db_datas IS NULL THEN NULL ELSE %(d)s END, checksum = %(c)s, file_size = %(n)s "
            f"WHERE type = 'binary' AND {_KEEP_ATTACHMENTS} AND {image if is_image else 'NOT ' + image}",
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


def _like_parent(path: Path) -> None:
    """New files get the owner of their directory (Odoo's user), so Odoo can garbage-collect them."""
    st = path.parent.stat()
    os.chown(path, st.st_uid, st.st_gid)
    os.chmod(path, 0o640)


__all__ = ["DEFAULT_RULES", "KINDS", "MaskRule", "apply_masking", "cut_secrets", "masking_key", "merged_rules",
           "replace_attachments", "rules_from_config"]
