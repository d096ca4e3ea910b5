"""Grow a real Odoo database (and its filestore) to a given size with realistic personal data, set-based.

    python bench/realdata.py DB FILESTORE_DIR --size-mb 1024 [--json]

Adds, in batches until database + filestore reach the size: contacts in `res_partner` (names, e-mails,
phones with their sanitized form, addresses), chatter messages on them in `mail_message` (bodies that
quote the contact's name, e-mail and phone), and text attachments in `ir_attachment` whose files in the
filestore and `index_content` list other contacts' names, e-mails, phones and addresses (as an exported
letter or a CSV would). Everything is `INSERT ... SELECT FROM generate_series` (rows) and one `COPY`
per batch (attachments), so a GB takes minutes, not hours.

The database must be an initialised Odoo database (the `mail` module installed: `contacts` is enough).
Columns are read from the catalogue: a column this generator does not know and that is NOT NULL
without a default takes the value of the table's first row, so the script follows the schema of the
Odoo version at hand. Run it while no Odoo process writes to the database (or accept that one may see
new rows appear).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

FIRST = ["Jane", "Piet", "Amélie", "Lars", "Sofia", "Jonas", "Emma", "Lucas", "Noor", "Mateo", "Elif", "Hugo",
         "Ines", "Milan", "Zoë", "Arthur", "Lina", "Tomás", "Maja", "Ravi", "Chloé", "Finn", "Aiko", "Omar",
         "Julia", "Bram", "Léa", "Nils", "Ana", "Victor", "Sara", "Mehdi", "Eva", "Karel", "Nina", "Pablo"]
LAST = ["Realperson", "Janssens", "Dubois", "Peeters", "Maes", "Lambert", "Jacobs", "Willems", "Mertens",
        "Claes", "Goossens", "Wouters", "Dupont", "Martin", "De Smet", "Leroy", "Vermeulen", "Hermans",
        "Moreau", "Fontaine", "Van Damme", "Schmitt", "Nowak", "Kowalski", "Rossi", "García", "Silva",
        "Novak", "Horvat", "Jensen", "Larsen", "Berg", "Fischer", "Weber", "Costa", "Moulin"]
STREETS = ["Rue de la Loi", "Meir", "Avenue Louise", "Kerkstraat", "Stationsstraat", "Grand-Place",
           "Rue Neuve", "Veldstraat", "Boulevard Anspach", "Dorpstraat", "Rue du Midi", "Nieuwstraat"]
CITIES = ["Brussels", "Antwerp", "Ghent", "Liège", "Namur", "Leuven", "Bruges", "Mons", "Hasselt", "Charleroi"]


@dataclass
class Growth:
    """What one run added, and how long each part took."""

    db: str
    target_bytes: int
    database_bytes: int = 0
    filestore_bytes: int = 0
    partners: int = 0
    messages: int = 0
    attachments: int = 0
    batches: int = 0
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def total_bytes(self) -> int:
        return self.database_bytes + self.filestore_bytes

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "total_bytes": self.total_bytes}


def _text_array(values: list[str]) -> sql.Composable:
    return sql.SQL("ARRAY[{}]::text[]").format(sql.SQL(", ").join(sql.Literal(v) for v in values))


def _columns(conn: psycopg.Connection[Any], table: str) -> dict[str, tuple[bool, bool]]:
    """column -> (NOT NULL, has a default) of table."""
    rows = conn.execute("SELECT column_name, is_nullable = 'NO', column_default IS NOT NULL "
                        "FROM information_schema.columns WHERE table_schema = 'public' AND table_name = %s",
                        (table,)).fetchall()
    if not rows:
        raise SystemExit(f"error: table {table} does not exist: is this an Odoo database with `mail` installed "
                         "(install contacts)?")
    return {r[0]: (bool(r[1]), bool(r[2])) for r in rows}


def _select_list(conn: psycopg.Connection[Any], table: str, wanted: Mapping[str, sql.Composable]
                 ) -> tuple[list[str], list[sql.Composable]]:
    """The columns and expressions to insert: the wanted ones the table has, plus the first row's value for
    every other NOT NULL column without a default (a newer Odoo's required field)."""
    cols = _columns(conn, table)
    names, exprs = [], []
    for name, expr in wanted.items():
        if name in cols:
            names.append(name)
            exprs.append(expr)
    for name, (not_null, has_default) in sorted(cols.items()):
        if not_null and not has_default and name not in wanted:
            names.append(name)
            exprs.append(sql.SQL("(SELECT {c} FROM {t} ORDER BY id LIMIT 1)").format(
                c=sql.Identifier(name), t=sql.Identifier(table)))
    return names, exprs


def _insert(conn: psycopg.Connection[Any], table: str, wanted: Mapping[str, sql.Composable],
            source: sql.Composable) -> tuple[int, int, int]:
    """(rows, smallest id, largest id) of the rows inserted."""
    names, exprs = _select_list(conn, table, wanted)
    stmt = sql.SQL("WITH ins AS (INSERT INTO {t} ({cols}) SELECT {exprs} FROM {src} RETURNING id) "
                   "SELECT count(*), min(id), max(id) FROM ins").format(
        t=sql.Identifier(table), cols=sql.SQL(", ").join(sql.Identifier(n) for n in names),
        exprs=sql.SQL(", ").join(exprs), src=source)
    row = conn.execute(stmt).fetchone()
    assert row is not None
    return int(row[0]), int(row[1] or 0), int(row[2] or 0)


def _partners(conn: psycopg.Connection[Any], count: int, country_id: int | None) -> tuple[int, int]:
    """count contacts; returns (first id, last id)."""
    first, last = _text_array(FIRST), _text_array(LAST)
    f = sql.SQL("({a})[1 + (s.g % {n})]").format(a=first, n=sql.Literal(len(FIRST)))
    ln = sql.SQL("({a})[1 + ((s.g / {n}) % {m})]").format(a=last, n=sql.Literal(len(FIRST)),
                                                            m=sql.Literal(len(LAST)))
    name = sql.SQL("{f} || ' ' || {l}").format(f=f, l=ln)
    email = sql.SQL("lower(translate({f} || '.' || replace({l}, ' ', ''), 'éëèçáíóúüöåøÉ', 'eeecaiouuoaoE')) "
                    "|| '.' || s.g || '@customer-' || (s.g % 89) || '.example.com'").format(f=f, l=ln)
    # Belgian mobile numbers: +32 4XX XX XX XX, the sanitized form is E.164.
    digits = sql.SQL("lpad(((s.g * 7919 + 1234567) % 100000000)::text, 8, '0')")
    phone = sql.SQL("'+32 4' || substr({d}, 1, 2) || ' ' || substr({d}, 3, 2) || ' ' || substr({d}, 5, 2) "
                    "|| ' ' || substr({d}, 7, 2)").format(d=digits)
    wanted: dict[str, sql.Composable] = {
        "id": sql.SQL("s.id"), "name": name, "complete_name": name, "email": email, "email_normalized": email,
        "phone": phone, "phone_sanitized": sql.SQL("'+324' || {d}").format(d=digits),
        "street": sql.SQL("(1 + s.g % 240) || ' ' || ({a})[1 + (s.g % {n})]").format(
            a=_text_array(STREETS), n=sql.Literal(len(STREETS))),
        "zip": sql.SQL("(1000 + s.g % 8999)::text"),
        "city": sql.SQL("({a})[1 + (s.g % {n})]").format(a=_text_array(CITIES), n=sql.Literal(len(CITIES))),
        "country_id": sql.Literal(country_id), "lang": sql.Literal("en_US"), "tz": sql.Literal("Europe/Brussels"),
        "active": sql.SQL("true"), "type": sql.Literal("contact"), "is_company": sql.SQL("false"),
        "partner_share": sql.SQL("true"), "commercial_partner_id": sql.SQL("s.id"), "color": sql.SQL("0"),
        "create_uid": sql.SQL("1"), "write_uid": sql.SQL("1"), "create_date": sql.SQL("now() at time zone 'UTC'"),
        "write_date": sql.SQL("now() at time zone 'UTC'"),
    }
    source = sql.SQL("(SELECT nextval('res_partner_id_seq') AS id, g FROM generate_series(1, {n}) g) s").format(
        n=sql.Literal(count))
    added, first, last = _insert(conn, "res_partner", wanted, source)
    assert added == count, (added, count)
    return first, last


def _messages(conn: psycopg.Connection[Any], first: int, last: int, every: int) -> int:
    """One chatter message on every `every`-th contact of [first, last], quoting its personal data."""
    subtype = conn.execute("SELECT res_id FROM ir_model_data WHERE module = 'mail' AND name = 'mt_note'").fetchone()
    wanted: dict[str, sql.Composable] = {
        "model": sql.Literal("res.partner"), "res_id": sql.SQL("p.id"), "record_name": sql.SQL("p.name"),
        "message_type": sql.Literal("comment"), "subtype_id": sql.Literal(subtype[0] if subtype else None),
        "author_id": sql.SQL("p.id"), "email_from": sql.SQL("p.name || ' <' || p.email || '>'"),
        "subject": sql.SQL("'Call back ' || p.name"),
        "body": sql.SQL("'<p>Spoke with ' || p.name || ' (' || p.phone || ', ' || p.email || '), living at ' || "
                        "p.street || ', ' || p.zip || ' ' || p.city || '. They asked for a new quotation and a "
                        "delivery before the end of the month; send the contract to the address above.</p>'"),
        "date": sql.SQL("now() at time zone 'UTC'"), "create_uid": sql.SQL("1"), "write_uid": sql.SQL("1"),
        "create_date": sql.SQL("now() at time zone 'UTC'"), "write_date": sql.SQL("now() at time zone 'UTC'"),
        "is_internal": sql.SQL("false"),
    }
    source = sql.SQL("res_partner p WHERE p.id BETWEEN {a} AND {b} AND (p.id % {e}) = 0").format(
        a=sql.Literal(first), b=sql.Literal(last), e=sql.Literal(every))
    return _insert(conn, "mail_message", wanted, source)[0]


def _letter(rows: list[tuple[Any, ...]]) -> bytes:
    lines = ["Customer contact list (export)", "name;email;phone;street;zip;city"]
    lines += [";".join(str(v) for v in row) for row in rows]
    return ("\n".join(lines) + "\n").encode()


def _attachments(conn: psycopg.Connection[Any], filestore: Path, first: int, last: int, count: int,
                 per_file: int, owner: tuple[int, int] | None) -> tuple[int, int]:
    """count text attachments on contacts of [first, last], each listing per_file contacts; (rows, bytes)."""
    rows = conn.execute("SELECT id, name, email, phone, street, zip, city FROM res_partner "
                        "WHERE id BETWEEN %s AND %s ORDER BY id LIMIT %s",
                        (first, last, count * per_file)).fetchall()
    company = conn.execute("SELECT id FROM res_company ORDER BY id LIMIT 1").fetchone()
    cols = _columns(conn, "ir_attachment")
    wanted = ["name", "res_model", "res_id", "type", "store_fname", "file_size", "checksum", "mimetype",
              "index_content", "company_id", "public", "create_uid", "write_uid", "create_date", "write_date"]
    names = [c for c in wanted if c in cols]
    missing = [c for c, (nn, has_default) in cols.items() if nn and not has_default and c not in wanted and c != "id"]
    if missing:
        raise SystemExit(f"error: ir_attachment has required columns this generator does not fill: {missing}")
    written = 0
    made_dirs: set[Path] = set()
    now = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())
    with conn.cursor().copy(sql.SQL("COPY ir_attachment ({}) FROM STDIN").format(
            sql.SQL(", ").join(sql.Identifier(n) for n in names))) as copy:
        for i in range(0, min(count * per_file, len(rows)), per_file):
            chunk = rows[i:i + per_file]
            data = _letter(chunk)
            sha = hashlib.sha1(data).hexdigest()
            folder = filestore / sha[:2]
            if folder not in made_dirs:
                folder.mkdir(parents=True, exist_ok=True)
                if owner:
                    os.chown(folder, *owner)
                made_dirs.add(folder)
            path = folder / sha
            path.write_bytes(data)
            if owner:
                os.chown(path, *owner)
            written += len(data)
            values = {"name": f"contacts-{chunk[0][0]}.csv", "res_model": "res.partner", "res_id": chunk[0][0],
                      "type": "binary", "store_fname": f"{sha[:2]}/{sha}", "file_size": len(data), "checksum": sha,
                      "mimetype": "text/csv", "index_content": data.decode(), "company_id": company[0] if company
                      else None, "public": False, "create_uid": 1, "write_uid": 1, "create_date": now,
                      "write_date": now}
            copy.write_row([values[n] for n in names])
    return len(range(0, min(count * per_file, len(rows)), per_file)), written


def _filestore_bytes(root: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except FileNotFoundError:
                continue
    return total


def grow(conninfo: Mapping[str, Any], db: str, filestore: Path, target_bytes: int, *,
         batch_partners: int = 50_000, messages_every: int = 3, attachments_per_batch: int = 600,
         contacts_per_file: int = 80, progress: Callable[[str], None] = lambda _m: None) -> Growth:
    """Add contacts, messages and attachments to db (filestore: its Odoo filestore directory) until the
    database and the filestore together hold target_bytes."""
    out = Growth(db=db, target_bytes=target_bytes)
    started = time.monotonic()
    filestore.mkdir(parents=True, exist_ok=True)
    st = filestore.stat()
    owner = (st.st_uid, st.st_gid) if os.geteuid() == 0 else None
    fs_bytes = _filestore_bytes(filestore)
    with psycopg.connect(dbname=db, autocommit=True, **conninfo) as conn:
        country = conn.execute("SELECT id FROM res_country WHERE code = 'BE'").fetchone()
        while True:
            db_bytes = int(conn.execute("SELECT pg_database_size(current_database())").fetchone()[0])  # type: ignore[index]
            out.database_bytes, out.filestore_bytes = db_bytes, fs_bytes
            if db_bytes + fs_bytes >= target_bytes:
                break
            marks = [time.monotonic()]
            with conn.transaction():
                first, last = _partners(conn, batch_partners, country[0] if country else None)
                marks.append(time.monotonic())
                out.messages += _messages(conn, first, last, messages_every)
                marks.append(time.monotonic())
                files, written = _attachments(conn, filestore, first, last, attachments_per_batch,
                                              contacts_per_file, owner)
                marks.append(time.monotonic())
            out.partners += batch_partners
            out.attachments += files
            fs_bytes += written
            out.batches += 1
            for name, a, b in zip(("partners", "messages", "attachments"), marks, marks[1:], strict=False):
                out.timings[name] = round(out.timings.get(name, 0.0) + b - a, 3)
            progress(f"batch {out.batches}: {(db_bytes + fs_bytes) / 1e6:,.0f} MB of {target_bytes / 1e6:,.0f} MB")
        t0 = time.monotonic()
        # Fresh statistics, as a long-running production has: later queries plan like they would there.
        conn.execute("ANALYZE res_partner, mail_message, ir_attachment")
        out.timings["analyze"] = round(time.monotonic() - t0, 3)
        out.database_bytes = int(conn.execute("SELECT pg_database_size(current_database())").fetchone()[0])  # type: ignore[index]
    out.filestore_bytes = fs_bytes
    out.seconds = round(time.monotonic() - started, 3)
    return out


def conninfo_from_env(env: Mapping[str, str]) -> dict[str, Any]:
    """host/port/user/password of the PostgreSQL superuser from .work/services.env's settings."""
    return {"host": env["ODOOOPS_PG_HOST"], "port": int(env["ODOOOPS_PG_PORT"]), "user": env["ODOOOPS_PG_USER"],
            "password": env["ODOOOPS_PG_PASSWORD"]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("db")
    ap.add_argument("filestore", type=Path, help="the database's filestore directory (<data_dir>/filestore/<db>)")
    ap.add_argument("--size-mb", type=float, default=1024.0, help="database + filestore size to reach (MB)")
    ap.add_argument("--batch", type=int, default=50_000, help="contacts per batch")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.services import load_services_env

    growth = grow(conninfo_from_env(load_services_env()), args.db, args.filestore, int(args.size_mb * 1e6),
                  batch_partners=args.batch, progress=lambda m: print(m, file=sys.stderr))
    if args.json:
        print(json.dumps(growth.to_json(), indent=1))
    else:
        print(f"{args.db}: {growth.total_bytes / 1e6:,.0f} MB (database {growth.database_bytes / 1e6:,.0f} MB, "
              f"filestore {growth.filestore_bytes / 1e6:,.0f} MB) after adding {growth.partners:,} contacts, "
              f"{growth.messages:,} messages, {growth.attachments:,} attachments in {growth.seconds:.1f} s "
              f"({', '.join(f'{k} {v:.1f} s' for k, v in growth.timings.items())})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
