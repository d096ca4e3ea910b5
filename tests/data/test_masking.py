"""The masking catalogue, its SQL functions and the phone mapping in the real PostgreSQL: deterministic, keyed,
valid fake values (Faker vocabularies, phonenumbers), set-based."""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import phonenumbers
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.data.catalogue import CATALOGUE_DIR, load_catalogue, odoo_version
from reconciler.data.masking import (
    DEFAULT_RULES,
    MaskRule,
    apply_masking,
    install_functions,
    masking_key,
    merged_rules,
    replace_attachments,
    rules_from_config,
)
from reconciler.errors import OdooOpsError
from reconciler.executors.postgres import Postgres
from reconciler.secrets import SecretStore

pytestmark = pytest.mark.integration

FAKE_EMAIL = re.compile(r"^[a-z]+\.[a-z]+\.[0-9a-f]{8}@example\.invalid$")


@pytest.fixture(scope="module")
def fn(pg: Postgres) -> Iterator[Callable[[str, str | None, str], Any]]:
    """fn(kind, value, key) -> the masked value, computed by the SQL function in one session."""
    conn = pg.connect()
    install_functions(conn)

    def call(kind: str, value: str | None, key: str = "k1") -> Any:
        return conn.execute(f"SELECT pg_temp.oo_{kind}(%s, %s)", (value, key)).fetchone()[0]

    yield call
    conn.close()


def test_rules_from_config_validates_what_reaches_sql() -> None:
    ok = rules_from_config([{"table": "x_card", "column": "number", "kind": "digits"}])
    assert ok == [MaskRule("x_card", "number", "digits")]
    for bad in ({"table": "res_partner; DROP TABLE x", "column": "a", "kind": "text"},
                {"table": "t", "column": "Name", "kind": "text"}, {"table": "t", "column": "c", "kind": "shuffle"}):
        with pytest.raises(OdooOpsError) as err:
            rules_from_config([ok[0].__dict__, bad])
        assert err.value.code == "MASK_RULE_INVALID" and err.value.details["pointer"] == "/masking/rules/1"
    merged = merged_rules([MaskRule("res_partner", "email", "hash"), MaskRule("x_card", "number", "digits")])
    assert MaskRule("res_partner", "email", "hash") in merged
    assert MaskRule("res_partner", "email", "email") not in merged
    assert len(merged) == len(DEFAULT_RULES) + 1
    assert MaskRule("ir_attachment", "index_content", "text") in DEFAULT_RULES


def test_deterministic_and_keyed(fn: Callable[..., Any], pg: Postgres) -> None:
    assert fn("email", "Jane@Acme.com") == fn("email", "jane@acme.com ")  # one person, one fake
    assert fn("email", '"Jane" <jane@acme.com>') == fn("email", "jane@acme.com")
    assert fn("email", "jane@acme.com", "k2") != fn("email", "jane@acme.com", "k1")
    assert fn("name", "Jane Doe") != fn("name", "John Doe")
    # Another session computes the same value: nothing depends on session state.
    with pg.connect() as other:
        install_functions(other)
        assert other.execute("SELECT pg_temp.oo_email('jane@acme.com', 'k1')").fetchone()[0] == fn(
            "email", "jane@acme.com")
    for kind in ("name", "email", "phone", "street", "zip", "city", "vat", "iban", "text", "digits", "hash", "url"):
        assert fn(kind, None) is None
    assert fn("login", "admin") == "admin" and FAKE_EMAIL.match(fn("login", "jane@acme.com"))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(alphabet="0123456789+-() .abcXYZ", min_size=1, max_size=30))
def test_format_preserving(fn: Callable[..., Any], value: str) -> None:
    for kind in ("digits", "zip"):
        out = fn(kind, value)
        assert len(out) == len(value)
        for a, b in zip(value, out, strict=True):
            if a.isdigit():
                assert b.isdigit()
            elif a.islower():
                assert b.islower() and b.isalpha()
            elif a.isupper():
                assert b.isupper() and b.isalpha()
            else:
                assert a == b  # punctuation, spaces and the leading + stay where they were


@given(st.emails())
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_emails_stay_emails(fn: Callable[..., Any], email: str) -> None:
    out = fn("email", email)
    assert FAKE_EMAIL.match(out), (email, out)
    assert email.lower() not in out


def test_vat_and_iban_keep_country_and_match_sanitized(fn: Callable[..., Any]) -> None:
    iban = "BE71 0961 2345 6769"
    masked = fn("iban", iban)
    assert masked.startswith("BE") and len(masked) == len(iban) and masked != iban
    assert fn("iban", iban.replace(" ", "")) == masked.replace(" ", "")
    assert fn("vat", "BE0477472701")[:2] == "BE"


def test_apply_masking_types_limits_and_missing_columns(pg: Postgres, make_db: Callable[..., str],
                                                        tmp_path: Any) -> None:
    db = make_db("mask")
    with pg.connect(db) as conn:
        conn.execute("CREATE TABLE res_partner (id serial PRIMARY KEY, name jsonb, email varchar(20), "
                     "zip varchar, comment text NOT NULL DEFAULT '', phone varchar)")
        conn.execute("""INSERT INTO res_partner (name, email, zip, comment, phone) VALUES
            ('{"en_US": "Jane Doe", "fr_FR": "Jeanne Doe"}', 'jane@acme.com', '1000', 'VIP', NULL),
            ('{"en_US": "John Roe"}', 'john@acme.com', '1000', '', '+32 2 555 01 01')""")
        secrets = SecretStore(tmp_path / "secrets", key_file=tmp_path / "key")
        key = masking_key(secrets)
        assert masking_key(secrets) == key  # get_or_create: one key per project
        rules = merged_rules([MaskRule("res_partner", "comment", "null"), MaskRule("no_such_table", "x", "text")])
        with conn.transaction():
            report = apply_masking(conn, key, rules)
        assert sorted(report["columns"]) == ["res_partner.comment", "res_partner.email", "res_partner.name",
                                             "res_partner.phone", "res_partner.zip"]
        rows = conn.execute("SELECT name, email, zip, comment, phone FROM res_partner ORDER BY id").fetchall()
        assert set(rows[0][0]) == {"en_US", "fr_FR"} and "Jane Doe" not in str(rows[0][0])
        assert all(len(r[1]) <= 20 for r in rows)  # varchar(20) respected
        assert rows[0][2] == rows[1][2] and rows[0][2] != "1000"  # same zip, same fake
        assert rows[0][3] == "" and rows[1][4] != "+32 2 555 01 01" and rows[0][4] is None
        assert phonenumbers.is_valid_number(phonenumbers.parse(rows[1][4]))


def test_masking_many_rows_in_one_update(pg: Postgres, make_db: Callable[..., str]) -> None:
    """Set-based: one UPDATE per table, whatever the number of rows (the report counts them)."""
    db = make_db("mask")
    with pg.connect(db) as conn:
        conn.execute("CREATE TABLE res_partner (id serial PRIMARY KEY, name varchar, email varchar, phone varchar)")
        conn.execute("INSERT INTO res_partner (name, email, phone) SELECT 'P' || g, 'p' || g || '@x.com', "
                     "'+1 555 ' || lpad(g::text, 4, '0') FROM generate_series(1, 20000) g")
        report = apply_masking(conn, "k", DEFAULT_RULES)
        assert report["rows"] == {"res_partner": 20000}
        left = conn.execute("SELECT count(*) FILTER (WHERE email = 'p' || id || '@x.com' OR name = 'P' || id "
                            "OR phone = '+1 555 ' || lpad(id::text, 4, '0')), "
                            "count(*) FILTER (WHERE email LIKE '%@example.invalid') FROM res_partner").fetchone()
        assert left == (0, 20000)


def test_short_values_never_stay_what_they_were(fn: Callable[..., Any]) -> None:
    """A per-character table maps "1000" to itself for 1 key in 64: a masked copy would keep that
    zip code. Over 400 keys (about 6 such keys before the fix) no value keeps its own form."""
    kept = [(kind, value, key) for key in (f"key-{i}" for i in range(400))
            for kind, value in (("zip", "1000"), ("digits", "42"), ("zip", "B-1000"), ("phone", "0470"))
            if fn(kind, value, key) == value]
    assert kept == []
    assert fn("zip", "1000", "key-7") == fn("zip", "1000", "key-7")  # still deterministic
    assert fn("zip", "----", "key-7") == "----"  # nothing to change: kept as is


def test_catalogues_per_version_ship_with_the_package() -> None:
    c19, c18, c17 = load_catalogue("19.0"), load_catalogue("18.0"), load_catalogue("17.0")
    rules19 = {(r.table, r.column): r for r in c19.rules}
    for place in [("ir_attachment", "index_content"), ("mail_tracking_value", "new_value_char"),
                  ("mail_message", "body"), ("crm_lead", "contact_name"), ("website_visitor", "email"),
                  ("calendar_attendee", "common_name"), ("hr_version", "private_street"),
                  ("res_partner_bank", "acc_number"), ("mail_mail", "email_to")]:
        assert place in rules19, place
    assert rules19[("res_partner", "phone_sanitized")].derive_from == ("phone",)
    assert "ir_logging" in c19.deletes and "res_partner" in c19.keep_rows
    rules18 = {(r.table, r.column): r for r in c18.rules}
    assert rules18[("res_partner", "phone_sanitized")].derive_from == ("mobile", "phone")
    assert ("res_partner", "mobile") in rules18 and ("res_partner", "mobile") not in rules19
    assert ("res_partner", "signup_expiration") in {(r.table, r.column) for r in c17.rules}
    assert load_catalogue("19.2").version == "19.0" and load_catalogue("16.0").version == "17.0"
    # Package data: the catalogue files are inside the package and declared in pyproject.
    root = Path(__file__).resolve().parents[2]
    data = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert "masking_catalogue/*.yaml" in data["reconciler.data"]
    assert root / "reconciler" / "data" / "masking_catalogue" == CATALOGUE_DIR
    project = c19.with_rules([MaskRule("res_partner", "email", "hash")])
    assert MaskRule("res_partner", "email", "hash") in project.rules and project.keep_rows == c19.keep_rows


PHONE_SCHEMA = """
CREATE TABLE ir_module_module (id serial PRIMARY KEY, name varchar, latest_version varchar);
INSERT INTO ir_module_module (name, latest_version) VALUES ('base', '18.0.1.3');
CREATE TABLE res_country (id serial PRIMARY KEY, code varchar, phone_code integer);
INSERT INTO res_country (code, phone_code) VALUES ('BE', 32);
CREATE TABLE res_company (id serial PRIMARY KEY, name varchar, partner_id integer, country_id integer);
CREATE TABLE res_users (id serial PRIMARY KEY, login varchar, partner_id integer);
CREATE TABLE res_partner (id serial PRIMARY KEY, name varchar, email varchar, phone varchar, mobile varchar,
  phone_sanitized varchar);
CREATE TABLE crm_lead (id serial PRIMARY KEY, phone varchar, phone_sanitized varchar);
CREATE TABLE sms_sms (number varchar, body text);
CREATE TABLE ir_logging (id serial PRIMARY KEY, message text);
"""
PHONES = [  # (phone, mobile, phone_sanitized as Odoo computes it: mobile first)
    ("+32 2 555 01 01", None, "+3225550101"),
    ("+3225550101", None, "+3225550101"),  # the same number written differently
    ("0470 12 34 56", None, "+32470123456"),  # local: the company's country (Belgium)
    ("+33 6 12 34 56 78", "+33 7 00 00 00 01", "+33700000001"),
    ("0033 1 23 45 67 89", None, "+33123456789"),
    ("+1 202-555-0143", None, "+12025550143"),
    ("+352 621 123 456", None, "+352621123456"),
    ("n/a", None, None),
]


def test_phones_are_valid_agree_with_their_sanitized_form_and_keep_their_country(
        pg: Postgres, make_db: Callable[..., str]) -> None:
    db = make_db("phones")
    with pg.connect(db) as conn:
        conn.execute(PHONE_SCHEMA)
        conn.execute("INSERT INTO res_partner (name) VALUES ('Acme')")
        conn.execute("INSERT INTO res_company (name, partner_id, country_id) VALUES ('Acme', 1, 1)")
        conn.execute("INSERT INTO res_users (login, partner_id) VALUES ('__system__', 2)")
        conn.execute("INSERT INTO res_partner (name, email, phone) VALUES ('OdooBot', 'odoobot@example.com', "
                     "'+32 2 000 00 00')")
        for phone, mobile, sanitized in PHONES:
            conn.execute("INSERT INTO res_partner (name, phone, mobile, phone_sanitized) VALUES ('P', %s, %s, %s)",
                         (phone, mobile, sanitized))
        conn.execute("INSERT INTO crm_lead (phone, phone_sanitized) VALUES ('+32 2 555 01 01', '+3225550101')")
        conn.execute("INSERT INTO sms_sms VALUES ('+3225550101', 'hi')")
        conn.execute("INSERT INTO ir_logging (message) VALUES ('login of jane@acme.com')")
        catalogue = load_catalogue(odoo_version(conn))
        assert catalogue.version == "18.0"
        with conn.transaction():
            report = apply_masking(conn, "k1", catalogue.rules, catalogue)
        assert report["deleted"] == {"ir_logging": 1} and report["phones"] == 14  # distinct values
        rows = conn.execute("SELECT id, phone, mobile, phone_sanitized FROM res_partner WHERE id > 2 "
                            "ORDER BY id").fetchall()
        for (_id, phone, mobile, sanitized), (real, real_mobile, real_sanitized) in zip(rows, PHONES, strict=True):
            if real == "n/a":
                assert phone != real and sanitized is None
                continue
            number = phonenumbers.parse(phone)
            assert phonenumbers.is_valid_number(number) and phone != real
            # Same country as the source (local numbers: the company's).
            assert number.country_code == phonenumbers.parse(real_sanitized if real_mobile is None else real,
                                                              "BE").country_code
            # phone_sanitized is the E.164 form of the row's fake (mobile first, as Odoo computes it).
            shown = mobile if real_mobile else phone
            assert sanitized == phonenumbers.format_number(phonenumbers.parse(shown),
                                                           phonenumbers.PhoneNumberFormat.E164)
            assert sanitized != real_sanitized
        # One number, one fake: written two ways, and in another table.
        assert rows[0][1] == rows[1][1]
        assert rows[0][3] == rows[1][3]
        lead = conn.execute("SELECT phone, phone_sanitized FROM crm_lead").fetchone()
        assert lead == (rows[0][1], rows[0][3])
        # Tables without an id column use the same map.
        assert conn.execute("SELECT number FROM sms_sms").fetchone()[0] == rows[0][1]
        # The company's partner and OdooBot are not personal data: kept.
        assert conn.execute("SELECT name, email, phone FROM res_partner WHERE id <= 2 ORDER BY id").fetchall() == [
            ("Acme", None, None), ("OdooBot", "odoobot@example.com", "+32 2 000 00 00")]


def test_fake_names_streets_and_cities_never_equal_their_source(fn: Callable[..., Any]) -> None:
    """Faker's vocabularies contain real names ("James Smith"): over 300 keys, no value maps to itself."""
    kept = [(kind, value, key) for key in (f"key-{i}" for i in range(300))
            for kind, value in (("name", "James Smith"), ("name", "Mary Johnson"), ("city", "Jamesville"))
            if fn(kind, value, key).lower() == value.lower()]
    assert kept == []
    assert re.match(r"^[A-Z][a-z]+ [A-Z][A-Za-z']+$", fn("name", "Jane Doe"))
    assert re.match(r"^\d{3,4} [A-Z][A-Za-z']+ [A-Z][a-z]+$", fn("street", "1 Main Street"))


def test_text_attachments_get_new_files_binaries_keep_theirs(pg: Postgres, make_db: Callable[..., str],
                                                              tmp_path: Path) -> None:
    db = make_db("att")
    store = tmp_path / "filestore"
    (store / "aa").mkdir(parents=True)
    (store / "aa" / "text1").write_bytes(b"jane@acme.com")
    (store / "aa" / "bin1").write_bytes(b"%PDF-1.4 binary")
    odoo = (61000, 61000)  # the filestore belongs to Odoo's user, not to the process that masks
    for path in (store, store / "aa", store / "aa" / "text1", store / "aa" / "bin1"):
        os.chown(path, *odoo)
    with pg.connect(db) as conn:
        conn.execute("CREATE TABLE ir_attachment (id serial PRIMARY KEY, name varchar, res_model varchar, "
                     "res_id integer, type varchar, url varchar, mimetype varchar, store_fname varchar, "
                     "db_datas bytea, checksum varchar, file_size integer, index_content text)")
        conn.execute("INSERT INTO ir_attachment (name, res_model, type, mimetype, store_fname, index_content) VALUES "
                     "('a.txt', 'res.partner', 'binary', 'text/plain', 'aa/text1', 'jane@acme.com'), "
                     "('b.pdf', 'res.partner', 'binary', 'application/pdf', 'aa/bin1', NULL)")
        result = replace_attachments(conn, store, "text")
        assert result == {"attachments": 1, "files_unlinked": 1}
        rows = conn.execute("SELECT store_fname FROM ir_attachment ORDER BY id").fetchall()
        assert rows[1][0] == "aa/bin1" and rows[0][0] != "aa/text1"
        assert b"jane" not in (store / rows[0][0]).read_bytes() and not (store / "aa" / "text1").exists()
        assert os.path.exists(store / "aa" / "bin1")
        # The placeholder's folder (its SHA-1 prefix, absent from the source) and file are Odoo's: Odoo reads it.
        new = store / rows[0][0]
        assert not (store / "aa").samefile(new.parent)
        owners = {(p.stat().st_uid, p.stat().st_gid) for p in (new, new.parent)}
        assert owners == {odoo}
