"""The whole-copy leak scan on real PostgreSQL: finds values that stayed anywhere, never reports the masker's own
fakes that happen to equal someone else's real value (chance equality), and checks the filestore."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from reconciler.data.catalogue import load_catalogue
from reconciler.data.filestore import link_tree
from reconciler.data.leakscan import file_tokens, scan_clone
from reconciler.data.masking import apply_masking
from reconciler.executors.postgres import Postgres

pytestmark = pytest.mark.integration

KEY = "scan-key"
CATALOGUE = load_catalogue("19.0")

SCHEMA = """
CREATE TABLE res_company (id serial PRIMARY KEY, name varchar, partner_id integer);
CREATE TABLE res_users (id serial PRIMARY KEY, login varchar NOT NULL, partner_id integer);
CREATE TABLE res_partner (id serial PRIMARY KEY, name varchar, complete_name varchar, email varchar,
  phone varchar, phone_sanitized varchar, street varchar, zip varchar, city varchar, comment text);
CREATE TABLE mail_message (id serial PRIMARY KEY, body text, email_from varchar, subject varchar);
CREATE TABLE x_notes (id serial PRIMARY KEY, note text, label jsonb);
CREATE TABLE x_rel (a integer, b text);
"""


def _fill(conn: psycopg.Connection[Any], partners: int) -> None:
    conn.execute(SCHEMA)
    conn.execute("INSERT INTO res_partner (name, email, phone, street, zip, city) VALUES "
                 "('Acme Corporation', 'info@acme-corp.com', '+32 2 555 00 00', '1 Main Square', '1000', 'Brussels')")
    conn.execute("INSERT INTO res_company (name, partner_id) VALUES ('Acme Corporation', 1)")
    conn.execute("INSERT INTO res_users (login, partner_id) VALUES ('admin', 1)")
    conn.execute(
        "INSERT INTO res_partner (name, complete_name, email, phone, phone_sanitized, street, zip, city) "
        "SELECT 'Person Number' || g, 'Person Number' || g, 'person' || g || '@corp' || (g %% 7) || '.com', "
        "'+32 470 ' || lpad((g * 7919 %% 1000000)::text, 6, '0'), "
        "'+32470' || lpad((g * 7919 %% 1000000)::text, 6, '0'), "
        "g || ' Long Street Road', (1000 + g %% 50)::text, 'Town' || (g %% 9) "
        "FROM generate_series(1, %s) g", (partners,))
    conn.execute("INSERT INTO mail_message (body, email_from, subject) SELECT '<p>Call me at +32 470 ' || "
                 "lpad((g * 7919 %% 1000000)::text, 6, '0') || '</p>', 'person' || g || '@corp' || (g %% 7) || '.com', "
                 "'Hello' FROM generate_series(1, %s) g", (min(partners, 50),))
    conn.execute("INSERT INTO x_notes (note, label) VALUES ('no personal data here', '{\"en_US\": \"Sales\"}')")
    conn.execute("INSERT INTO x_rel VALUES (1, 'nothing')")


def _copy(pg: Postgres, src: str, make_db: Callable[..., str]) -> str:
    dst = make_db("scanclone")
    pg.drop(dst)
    with pg.connect() as conn:
        conn.execute(sql.SQL("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = {}").format(
            sql.Literal(src)))
        conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(dst), sql.Identifier(src)))
    return dst


def test_a_clean_masked_copy_passes_and_stayed_values_are_found_anywhere(pg: Postgres,
                                                                        make_db: Callable[..., str]) -> None:
    src = make_db("scansrc")
    with pg.connect(src) as conn:
        _fill(conn, 200)
        # Personal data outside the catalogue: a custom table copying a partner's e-mail and phone.
        conn.execute("INSERT INTO x_notes (note) VALUES ('Follow up with person7@corp0.com tomorrow'), "
                     "('ring +32 470 055 433'), ('Person Number9')")
    dst = _copy(pg, src, make_db)
    with pg.connect(src) as source, pg.connect(dst) as conn:
        apply_masking(conn, KEY, CATALOGUE.rules, CATALOGUE)
        result = scan_clone(conn, source, CATALOGUE)
        # x_notes is not in the catalogue: its e-mail and phone (in free text) and the full name are leaks.
        assert result["leaked"] == {"x_notes.note": 3}, result["examples"]
        assert {e["reason"] for e in result["examples"]} == {"stayed"}
        assert result["personal_values"] > 600 and result["columns_scanned"] >= 15
        conn.execute("DELETE FROM x_notes WHERE id > 1")
        clean = scan_clone(conn, source, CATALOGUE)
        assert clean["ok"] and clean["leaks"] == 0, clean
        # The company's own partner is kept (not personal data): its values are not leaks.
        assert conn.execute("SELECT email FROM res_partner WHERE id = 1").fetchone()[0] == "info@acme-corp.com"
        # A value the masker missed, in a catalogue column and in one without an id column, is found.
        conn.execute("UPDATE res_partner SET email = 'person5@corp5.com' WHERE id = 6")
        conn.execute("UPDATE res_partner SET zip = (SELECT zip FROM res_partner WHERE id = 1) WHERE id = 1")
        conn.execute("INSERT INTO x_rel VALUES (2, '+32470039595')")
        conn.execute("UPDATE res_partner SET city = 'Town5' WHERE id = 6")  # its own real town: stayed
        found = scan_clone(conn, source, CATALOGUE)
        assert found["leaked"] == {"res_partner.email": 1, "x_rel.b": 1, "res_partner.city": 1}, found
        assert not found["ok"]


def test_chance_equality_is_never_a_leak(pg: Postgres, make_db: Callable[..., str]) -> None:
    """Force the collisions that failed every large clone: person B's real e-mail, name and phone are
    exactly the fakes the masker gives person A. The scan reports them as chance, with no leak: false
    positives from the masker's own output are zero by construction, at any size."""
    src = make_db("scansrc")
    n, forced = 2000, 300
    with pg.connect(src) as conn:
        _fill(conn, n)
    # A first masked copy tells what A's fakes are (the pick is keyed and deterministic per clone key).
    probe = _copy(pg, src, make_db)
    with pg.connect(probe) as conn:
        apply_masking(conn, KEY, CATALOGUE.rules, CATALOGUE)
        fakes = conn.execute("SELECT id, email, name, phone, phone_sanitized FROM res_partner "
                             "WHERE id BETWEEN 2 AND %s ORDER BY id", (forced + 1,)).fetchall()
    with pg.connect(src) as conn:
        # B = A + 1000 takes A's fakes as its real values (same calling code: the phone pools stay the same).
        for row_id, email, name, phone, sanitized in fakes:
            conn.execute("UPDATE res_partner SET email = %s, name = %s, complete_name = %s, phone = %s, "
                         "phone_sanitized = %s WHERE id = %s", (email, name, name, phone, sanitized, row_id + 1000))
    dst = _copy(pg, src, make_db)
    with pg.connect(src) as source, pg.connect(dst) as conn:
        apply_masking(conn, KEY, CATALOGUE.rules, CATALOGUE)
        # Every forced fake is still what A gets (so each collision really is in the copy).
        again = dict(conn.execute("SELECT id, email FROM res_partner WHERE id BETWEEN 2 AND %s",
                                  (forced + 1,)).fetchall())
        assert all(again[r[0]] == r[1] for r in fakes)
        result = scan_clone(conn, source, CATALOGUE)
        assert result["ok"] and result["leaks"] == 0, (result["examples"], result["chance_equal"])
        # Each colliding cell counts once (a phone matches by its whole value and by its digits).
        assert result["chance_equal"]["res_partner.email"] == forced
        assert result["chance_equal"]["res_partner.name"] == forced
        assert result["chance_equal"]["res_partner.phone"] >= forced  # and natural ones: B took pool numbers
        assert result["chance_equal"]["res_partner.phone_sanitized"] >= forced
        # And a real leak among the collisions is still a leak: B keeps its own (colliding) real e-mail.
        conn.execute("UPDATE res_partner SET email = %s WHERE id = 1002", (fakes[0][1],))
        mixed = scan_clone(conn, source, CATALOGUE)
        assert mixed["leaked"] == {"res_partner.email": 1}, mixed


def test_filestore_hardlinks_and_text_files(pg: Postgres, make_db: Callable[..., str], tmp_path: Path) -> None:
    src = make_db("scansrc")
    with pg.connect(src) as conn:
        _fill(conn, 20)
    prod_store = tmp_path / "prod"
    (prod_store / "ab").mkdir(parents=True)
    (prod_store / "ab" / "abc1").write_bytes(b"Dear Person Number3,\nperson3@corp3.com +32 470 023 757\n")
    (prod_store / "ab" / "abc2").write_bytes(bytes(range(256)) * 4)  # binary
    linked = link_tree(prod_store, tmp_path / "linked")
    copied = link_tree(prod_store, tmp_path / "copied", hardlink=False)
    assert linked.linked == 2 and copied.linked == 0
    assert os.stat(tmp_path / "copied" / "ab" / "abc2").st_ino != os.stat(prod_store / "ab" / "abc2").st_ino
    dst = _copy(pg, src, make_db)
    with pg.connect(src) as source, pg.connect(dst) as conn:
        apply_masking(conn, KEY, CATALOGUE.rules, CATALOGUE)
        hard = scan_clone(conn, source, CATALOGUE, filestore=tmp_path / "linked", source_filestore=prod_store)
        assert hard["hardlinked_files"] == 2 and not hard["ok"]
        assert hard["leaked"] == {"filestore:ab/abc1": 2} and hard["files_scanned"] == 1
        (tmp_path / "copied" / "ab" / "abc1").write_bytes(b"This attachment was replaced.\n")
        clean = scan_clone(conn, source, CATALOGUE, filestore=tmp_path / "copied", source_filestore=prod_store)
        assert clean["ok"] and clean["hardlinked_files"] == 0, clean


def test_file_tokens() -> None:
    tokens = file_tokens(b"Jane <Jane.Doe@Example.com>, tel. +32 (0)2 555-01-01; ref 2024")
    assert len(tokens) == 2
    # Digits inside a hash or a reference are not a phone number (a checksum once matched a real phone).
    assert file_tokens(b"checksum 3fa91234567890c0d, ref SO32470123456X") == set()
