"""Masking on a real Odoo 19 database (contacts, mail, crm, sale, hr, calendar, website) through the product's
clone path: no production value anywhere in the copy (its own scan, and a pg_dump grep as independent
evidence), phones valid and agreeing with their E.164 form, attachment files copied (not hardlinked) and
text ones rewritten, and Odoo still serves the masked database (login, ORM reads)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import httpx
import phonenumbers
import pytest

from reconciler.data.clone import clone_to_scratch
from reconciler.executors.postgres import Postgres
from tests.data.conftest import data_context, standin_runner
from tests.realodoo.conftest import WORK, RealOdoo
from tests.realodoo.data_env import env_role, write_state
from tests.realodoo.odoo_http import odoo_login

pytestmark = [pytest.mark.integration, pytest.mark.realodoo]

MODULES = ("contacts", "mail", "crm", "sale", "hr", "calendar", "website")
ODOO_UID = 101
# Production's personal values: each must be gone from every byte of the masked copy.
PEOPLE = [
    {"name": "Wilhelmina Castellanos", "email": "wilhelmina.castellanos@harbour-example.com",
     "phone": "+32 470 12 34 56", "street": "17 Rue des Tanneurs Obscure", "vat": "BE0863597413"},
    {"name": "Bartholomew Okonkwo-Reyes", "email": "b.okonkwo.reyes@lagoon-example.org",
     "phone": "+33 6 12 34 56 78", "street": "9 Impasse Zephyrine", "vat": "FR27518246709"},
    {"name": "Philippa Drummond-Vance", "email": "philippa@drummond-vance-example.net",
     "phone": "+1 202-555-0143", "street": "4420 Quillback Terrace", "vat": ""},
]
LEAD = {"contact_name": "Evangeline Marchetti-Holm", "email_from": "evangeline@marchetti-holm-example.com",
        "phone": "+44 7911 123456", "partner_name": "Marchetti Holm Logistics"}
EMPLOYEE = {"name": "Thaddeus Wojciechowski", "private_email": "thaddeus.w@private-example.pl",
            "private_phone": "+48 512 345 678"}


def _forms(value: str) -> set[str]:
    """The ways a value can show up in a dump: as written, and phones by their digits (E.164)."""
    out = {value}
    if value.startswith("+"):
        out.add("+" + re.sub(r"\D", "", value))
    return out


def _secrets() -> set[str]:
    values: set[str] = set()
    for person in [*PEOPLE, LEAD, EMPLOYEE]:
        for key, value in person.items():
            if value and key != "vat":  # VATs keep their country prefix, the rest changes: checked below
                values |= _forms(value)
    return values


@pytest.fixture
def dev_role(pg_conn_params: dict[str, Any]) -> Iterator[str]:
    """The target environment's database role (as Terraform makes it); it and its databases go afterwards."""
    with env_role(pg_conn_params, "dev") as role:
        yield role


FILL = """
import base64
people = {people!r}
partners = env['res.partner']
for p in people:
    partners |= env['res.partner'].create({{k: v for k, v in p.items() if v}})
jane = partners[0]
text = ("Meeting notes\\nContact: %s <%s>, tel. %s\\nAddress: %s\\n" % (jane.name, jane.email, people[0]['phone'],
        people[0]['street'])).encode()
att = env['ir.attachment'].create({{'name': 'notes.txt', 'raw': text, 'mimetype': 'text/plain',
                                    'res_model': 'res.partner', 'res_id': jane.id}})
pdf = env['ir.attachment'].create({{'name': 'scan.bin', 'raw': bytes(range(256)) * 64,
                                    'mimetype': 'application/octet-stream', 'res_model': 'res.partner',
                                    'res_id': partners[1].id}})
partners[1].message_post(body="Please call %s at %s or write to %s" % (partners[1].name, people[1]['phone'],
                                                                        partners[1].email))
lead = env['crm.lead'].create(dict({lead!r}, name='Big deal', type='opportunity'))
env.cr.commit()  # changes are tracked on records that existed before the transaction
lead.write({{'email_from': people[2]['email']}})  # tracked: the old address goes to mail_tracking_value
emp = env['hr.employee'].create({employee!r})
event = env['calendar.event'].create({{'name': 'Review', 'start': '2030-01-01 10:00:00',
                                       'stop': '2030-01-01 11:00:00', 'partner_ids': [(6, 0, partners.ids)]}})
env.cr.commit()
print('FILLED', json.dumps({{'partners': partners.ids, 'att': att.id, 'bin': pdf.id, 'fname': att.store_fname,
                            'index': bool(att.index_content), 'lead': lead.id, 'employee': emp.id,
                            'attendees': len(event.attendee_ids)}}))
"""


def test_a_masked_copy_of_real_odoo_holds_no_production_value_and_still_works(
        real_odoo: RealOdoo, odoo_db: Any, odoo_image: str, dev_role: str, tmp_path: Path,
        services_env: dict[str, str], pg_conn_params: dict[str, Any], pg_host_from_containers: str,
        docker_client: docker.DockerClient) -> None:
    source = odoo_db(MODULES)
    pg = Postgres(pg_conn_params["host"], int(pg_conn_params["port"]), pg_conn_params["user"],
                  pg_conn_params["password"])
    ctx = data_context(tmp_path / "state", services_env, pg)
    write_state(ctx, {source: {"tier": "staging"}, dev_role: {"tier": "dev"}})
    code = "import json\n" + FILL.format(people=PEOPLE, lead=LEAD, employee=EMPLOYEE)
    filled = real_odoo.shell(source, code, timeout=900)
    line = next((x for x in filled.output.splitlines() if x.startswith("FILLED ")), None)
    assert line is not None, filled.output[-4000:]
    made = json.loads(line.split(" ", 1)[1])
    assert made["index"] and made["attendees"] == 3  # Odoo indexed the text file; attendees exist
    with pg.connect(source) as conn:
        tracked = conn.execute("SELECT count(*) FROM mail_tracking_value WHERE old_value_char = %s",
                               (LEAD["email_from"],)).fetchone()[0]
        assert tracked == 1  # the personal value really is in the tracking values
        phones = conn.execute("SELECT phone, phone_sanitized FROM res_partner WHERE id = ANY(%s) ORDER BY id",
                              (made["partners"],)).fetchall()
        assert [p[1] for p in phones] == ["+32470123456", "+33612345678", "+12025550143"]
        assert conn.execute("SELECT phone_sanitized FROM crm_lead WHERE id = %s", (made["lead"],)).fetchone() == (
            "+447911123456",)

    # The source's filestore where the platform keeps it (hardlinked from the test database's, as production's
    # files would be on the host).
    ctx.host.filestore_dir(source).parent.mkdir(parents=True)
    files = WORK / "data" / source / "filestore" / source
    assert (files / made["fname"]).is_file()
    subprocess.run(["cp", "-al", str(files), str(ctx.host.filestore_dir(source))], check=True)
    os.chown(ctx.host.filestore_dir(source), ODOO_UID, ODOO_UID)

    result = None
    served = None
    try:
        started = time.monotonic()
        result = clone_to_scratch(ctx, source, dev_role, neutralize=True, mask=True,
                                  run_odoo=standin_runner(docker_client, odoo_image, pg_conn_params,
                                                          pg_host_from_containers, dev_role))
        seconds = time.monotonic() - started
        v = result.verification
        assert v["ok"], v
        scan = v["leak_scan"]
        assert scan["leaks"] == 0 and scan["hardlinked_files"] == 0, scan
        assert scan["columns_scanned"] > 1000 and scan["personal_values"] > 20, scan
        print(f"clone + neutralize + mask + scan of real Odoo in {seconds:.1f}s: {result.steps}; scan {scan}")

        # Independent evidence: not one production value in a plain pg_dump of the copy, nor in its files.
        pg_dump = Path(services_env.get("ODOOOPS_PG_BIN", "")) / "pg_dump"
        dump = subprocess.run(
            [str(pg_dump) if pg_dump.is_file() else "pg_dump", "-h", str(pg_conn_params["host"]), "-p",
             str(pg_conn_params["port"]), "-U", str(pg_conn_params["user"]), "-d", result.db],
            env={**os.environ, "PGPASSWORD": str(pg_conn_params["password"])}, capture_output=True, check=True,
        ).stdout.decode("utf-8", "replace")
        assert len(dump) > 1_000_000
        blob = dump.lower()
        found = sorted(v for v in _secrets() if v.lower() in blob)
        assert found == [], found
        for vat in ("be0863597413", "fr27518246709"):
            at = blob.find(vat)
            assert at < 0, dump[max(0, at - 400):at + 100]
        for path in result.filestore.rglob("*"):
            if path.is_file():
                data = path.read_bytes().decode("utf-8", "replace").lower()
                assert not [v for v in _secrets() if v.lower() in data], path
        # No file of the copy is one of the source's inodes; the text attachment got new contents.
        source_inodes = {(p.stat().st_dev, p.stat().st_ino) for p in ctx.host.filestore_dir(source).rglob("*")
                         if p.is_file()}
        copy_files = [p for p in result.filestore.rglob("*") if p.is_file()]
        assert copy_files and not [p for p in copy_files if (p.stat().st_dev, p.stat().st_ino) in source_inodes]
        assert (ctx.host.filestore_dir(source) / made["fname"]).read_bytes().startswith(b"Meeting notes")

        with pg.connect(result.db) as conn:
            # Phones: valid numbers of the same country, and phone_sanitized is the E.164 form of phone.
            rows = conn.execute("SELECT phone, phone_sanitized FROM res_partner WHERE id = ANY(%s) ORDER BY id",
                                (made["partners"],)).fetchall()
            for (phone, sanitized), person in zip(rows, PEOPLE, strict=True):
                number = phonenumbers.parse(phone)
                assert phonenumbers.is_valid_number(number), phone
                assert number.country_code == phonenumbers.parse(person["phone"]).country_code
                assert sanitized == phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
            lead = conn.execute("SELECT phone, phone_sanitized FROM crm_lead WHERE id = %s",
                                (made["lead"],)).fetchone()
            assert lead[1] is not None and lead[1] == phonenumbers.format_number(phonenumbers.parse(lead[0]),
                                                         phonenumbers.PhoneNumberFormat.E164)
            att = conn.execute("SELECT store_fname, index_content FROM ir_attachment WHERE id = %s",
                               (made["att"],)).fetchone()
            assert att[0] != made["fname"] and "castellanos" not in (att[1] or "").lower()
            binary = conn.execute("SELECT store_fname FROM ir_attachment WHERE id = %s", (made["bin"],)).fetchone()
            assert (result.filestore / binary[0]).read_bytes() == bytes(range(256)) * 64  # binaries keep bytes
            assert conn.execute("SELECT count(*) FROM ir_logging").fetchone()[0] == 0
            employee = conn.execute("SELECT r.name, e.private_email FROM hr_employee e JOIN resource_resource r ON "
                                    "r.id = e.resource_id WHERE e.id = %s", (made["employee"],)).fetchone()
            assert employee[0] != EMPLOYEE["name"] and employee[1].endswith("@example.invalid")
            partner_name = conn.execute("SELECT name FROM res_partner WHERE id = %s",
                                        (made["partners"][0],)).fetchone()[0]

        # Odoo still loads the masked database: served, the copy's admin logs in, the ORM reads partners.
        served = result.db
        real_odoo.data_dir(served)
        target = WORK / "data" / served / "filestore"
        target.mkdir(exist_ok=True)
        os.chown(target, ODOO_UID, ODOO_UID)
        shutil.move(str(result.filestore), str(target / served))
        password = ctx.secrets.get(dev_role, "admin_password")
        assert password and password != "admin"
        with real_odoo.serve(served) as server:
            assert odoo_login(server.url, served, "admin", password)
            with httpx.Client(base_url=server.url, timeout=120) as client:
                auth = client.post("/web/session/authenticate", json={
                    "jsonrpc": "2.0", "method": "call", "id": 1,
                    "params": {"db": served, "login": "admin", "password": password}})
                assert auth.json()["result"]["uid"]
                read = client.post("/web/dataset/call_kw/res.partner/read", json={
                    "jsonrpc": "2.0", "method": "call", "id": 2, "params": {
                        "model": "res.partner", "method": "read",
                        "args": [made["partners"][:1], ["name", "email", "phone"]], "kwargs": {}}}).json()
                assert "error" not in read, read
                assert read["result"][0]["name"] == partner_name
                assert read["result"][0]["email"].endswith("@example.invalid")
                content = client.get(f"/web/content/{made['att']}")
                assert content.status_code == 200 and b"replaced" in content.content
    finally:
        if result is not None:
            pg.drop(result.db)
            shutil.rmtree(result.filestore, ignore_errors=True)
        if served is not None:
            shutil.rmtree(WORK / "data" / served, ignore_errors=True)
        shutil.rmtree(ctx.host.filestore_root, ignore_errors=True)
