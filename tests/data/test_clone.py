"""clone_to_scratch on the real stand-in, PostgreSQL and filestore: neutralized, masked, verified, or dropped."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import phonenumbers
import psycopg
import pytest

from reconciler.data.clone import MAIL_CATCHER_NAME, clone_to_scratch, sanitize
from reconciler.data.masking import masking_key
from reconciler.data.scratch import parse, scratch_name
from reconciler.errors import OdooOpsError
from tests.data.conftest import PERSONAL

pytestmark = pytest.mark.integration

CATCHER = {"host": "10.207.0.1", "port": 1025, "user": "stage", "password": "catcher-pass"}
PROJECT_RULES = [{"table": "x_loyalty_card", "column": "card_no", "kind": "digits"}]

SNAPSHOT = """
SELECT 'partner', string_agg(concat_ws('|', name, email, phone, street, zip, city, vat), ';' ORDER BY id)
  FROM res_partner
UNION ALL SELECT 'users', string_agg(concat_ws('|', login, password, totp_secret), ';' ORDER BY id) FROM res_users
UNION ALL SELECT 'keys', count(*)::text FROM res_users_apikeys
UNION ALL SELECT 'mail', string_agg(concat_ws('|', name, active::text), ';' ORDER BY id) FROM ir_mail_server
UNION ALL SELECT 'params', string_agg(key || '=' || value, ';' ORDER BY key) FROM ir_config_parameter
UNION ALL SELECT 'cards', string_agg(card_no, ';' ORDER BY id) FROM x_loyalty_card
"""


def q(pg: Any, db: str, query: str, params: Any = None) -> list[tuple[Any, ...]]:
    with pg.connect(db) as conn:
        return conn.execute(query, params).fetchall()


def snapshot(pg: Any, db: str) -> dict[str, str]:
    return dict(q(pg, db, SNAPSHOT))


def _stage_clones(pg: Any, stage: str) -> list[str]:
    return [r[0] for r in q(pg, "postgres", "SELECT datname FROM pg_database WHERE pg_get_userbyid(datdba) = %s "
                                            "AND starts_with(datname, 'oo_clone_')", (stage,))]


def test_clone_neutralized_masked_and_verified(production: dict[str, Any]) -> None:
    ctx, prod, stage = production["ctx"], production["env"], production["stage"]
    pg = ctx.pg
    before = snapshot(pg, prod)
    result = clone_to_scratch(ctx, prod, stage, neutralize=True, mask=True, rules=PROJECT_RULES,
                              run_odoo=production["run_stage"], mail_server=CATCHER, attachments=True)
    db = result.db
    assert db.startswith("oo_clone_") and len(db) == len("oo_clone_") + 13 and parse(db)[0] == "clone"
    v = result.verification
    assert v["ok"] and v["failed"] == [], v
    assert set(v["checks"]) >= {"is_neutralized", "mail_servers", "crons", "automation_rules", "new_identity",
                                "personal_data"}
    assert v["checks"]["personal_data"]["leaks"] == 0 and v["leak_scan"]["columns_scanned"] > 20
    assert "res_partner.email" in v["masked_columns"] and "mail_message.email_from" in v["masked_columns"]

    # Query the copy ourselves rather than trusting verify.py.
    texts = q(pg, db, "SELECT concat_ws('|', name, display_name, email, phone, street, street2, zip, city, vat, "
                      "website, comment) FROM res_partner "
                      "UNION ALL SELECT concat_ws('|', login, signature) FROM res_users "
                      "UNION ALL SELECT concat_ws('|', acc_number, sanitized_acc_number, acc_holder_name) "
                      "FROM res_partner_bank "
                      "UNION ALL SELECT concat_ws('|', subject, body, email_from) FROM mail_message "
                      "UNION ALL SELECT concat_ws('|', body_html, email_to) FROM mail_mail "
                      "UNION ALL SELECT concat_ws('|', old_value_char, new_value_char) FROM mail_tracking_value "
                      "UNION ALL SELECT card_no FROM x_loyalty_card")
    blob = "\n".join(r[0] for r in texts)
    for values in PERSONAL.values():
        for value in values:
            assert value not in blob, value
    # Deterministic: one source email gets one fake, wherever it appears.
    fake = q(pg, db, "SELECT p.email, u.login, m.email_to FROM res_partner p JOIN res_users u ON u.partner_id = p.id "
                     "JOIN mail_message mm ON mm.author_id = p.id JOIN mail_mail m ON m.mail_message_id = mm.id "
                     "ORDER BY p.id LIMIT 1")[0]
    assert fake[0] == fake[1] == fake[2] and fake[0].endswith("@example.invalid")
    from_ = q(pg, db, "SELECT email_from FROM mail_message WHERE author_id = (SELECT partner_id FROM res_users "
                      "WHERE login = %s)", (fake[0],))[0][0]
    assert from_ == fake[0]
    phones = [r[0] for r in q(pg, db, "SELECT phone FROM res_partner WHERE phone IS NOT NULL ORDER BY id")]
    for real, masked in zip(PERSONAL["phones"], phones[-3:], strict=True):
        # A valid number of the same country (phonenumbers' metadata), never the real one.
        number = phonenumbers.parse(masked)
        assert phonenumbers.is_valid_number(number) and masked != real
        assert number.country_code == phonenumbers.parse(real).country_code
    banks = q(pg, db, "SELECT acc_number, sanitized_acc_number FROM res_partner_bank ORDER BY id")
    assert all(a.replace(" ", "") == s and a[:2] == r[:2] for (a, s), r in zip(banks, PERSONAL["ibans"], strict=True))

    # Neutralized: only the catcher sends, only the auto-vacuum runs, secrets are gone.
    assert q(pg, db, "SELECT name, smtp_host, smtp_port FROM ir_mail_server WHERE active") == [
        (MAIL_CATCHER_NAME, CATCHER["host"], CATCHER["port"])]
    assert q(pg, db, "SELECT d.name FROM ir_cron c JOIN ir_model_data d ON d.res_id = c.id AND d.model = 'ir.cron' "
                     "WHERE c.active") == [("autovacuum_job",)]
    assert q(pg, db, "SELECT count(*) FROM ir_cron WHERE active") == [(1,)]
    assert q(pg, db, "SELECT count(*) FROM base_automation WHERE active") == [(0,)]
    assert q(pg, db, "SELECT count(*) FROM res_users_apikeys UNION ALL SELECT count(*) FROM auth_passkey_key") == [
        (0,), (0,)]
    # Only the admin user gets a password again: the target's own (admin_password.py).
    assert q(pg, db, "SELECT count(*) FROM res_users WHERE (password IS NOT NULL AND login <> 'admin') "
                     "OR totp_secret IS NOT NULL") == [(0,)]
    assert q(pg, db, "SELECT account_token FROM iap_account")[0][0] != "iap-token-secret"
    params = dict(q(pg, db, "SELECT key, value FROM ir_config_parameter"))
    src_params = dict(q(pg, prod, "SELECT key, value FROM ir_config_parameter"))
    assert params["database.is_neutralized"] == "true"
    assert params["web.base.url"] == f"http://{stage}.{ctx.host.base_domain}"
    assert params["web.base.url.freeze"] == "True"
    assert params["database.uuid"] != src_params["database.uuid"]
    assert params["database.secret"] != src_params["database.secret"]

    # Owned by the target role; filestore linked into the target's directory, attachments replaced there only.
    assert {r[0] for r in q(pg, db, "SELECT DISTINCT pg_get_userbyid(relowner) FROM pg_class "
                                    "WHERE relnamespace = 'public'::regnamespace")} == {stage}
    assert result.filestore == ctx.host.filestore_dir(stage, db) and result.filestore.is_dir()
    assert result.filestore_stats["files"] == 2
    src_files = {p.relative_to(production["filestore"]): p.read_bytes()
                 for p in production["filestore"].rglob("*") if p.is_file()}
    assert len(src_files) == 2 and all(b"of " in data for data in src_files.values())
    for rel in src_files:
        assert not (result.filestore / rel).exists()  # unlinked from the copy, still in production
    stored = q(pg, db, "SELECT store_fname, mimetype FROM ir_attachment WHERE res_model = 'res.partner' ORDER BY id")
    for fname, _mimetype in stored:
        assert b"of " not in (result.filestore / fname).read_bytes()
    # Ours plus the company logo `odoo -i` stored (its file lives in the init container's own data dir).
    assert v["attachments"]["attachments"] >= 2 and v["attachments"]["files_unlinked"] == 2

    # The source is untouched and open again.
    assert snapshot(pg, prod) == before
    assert q(pg, "postgres", "SELECT datallowconn FROM pg_database WHERE datname = %s", (prod,)) == [(True,)]

    # Same project key -> same fakes in the next copy (sanitize on a plain copy, as restores use it).
    again = scratch_name("clone")
    pg.clone(prod, again, owner=stage)
    try:
        pg.reassign_objects(again, stage)
        second = sanitize(ctx, again, stage, neutralize=False, mask=True, source_db=prod, rules=PROJECT_RULES)
        assert second["ok"], second
        assert q(pg, again, "SELECT email, phone FROM res_partner ORDER BY id") == q(
            pg, db, "SELECT email, phone FROM res_partner ORDER BY id")
        assert "is_neutralized" not in second["checks"]
    finally:
        pg.drop(again)
    assert len(masking_key(ctx.secrets)) >= 32
    pg.drop(db)
    shutil.rmtree(result.filestore)


def test_verification_failure_drops_the_copy(production: dict[str, Any]) -> None:
    """A custom trigger puts card numbers back after masking: the scan finds them, the copy goes."""
    ctx, prod, stage = production["ctx"], production["env"], production["stage"]
    pg = ctx.pg
    with pg.connect(prod) as conn:
        conn.execute("CREATE FUNCTION x_keep_card() RETURNS trigger LANGUAGE plpgsql AS "
                     "$$ BEGIN NEW.card_no := OLD.card_no; RETURN NEW; END $$")
        conn.execute("CREATE TRIGGER x_keep_card BEFORE UPDATE ON x_loyalty_card FOR EACH ROW "
                     "EXECUTE FUNCTION x_keep_card()")
    existing = set(_stage_clones(pg, stage))
    try:
        with pytest.raises(OdooOpsError) as failed:
            clone_to_scratch(ctx, prod, stage, neutralize=True, mask=True, rules=PROJECT_RULES,
                             run_odoo=production["run_stage"], mail_server=CATCHER)
    finally:
        with pg.connect(prod) as conn:
            conn.execute("DROP TRIGGER x_keep_card ON x_loyalty_card")
            conn.execute("DROP FUNCTION x_keep_card()")
    err = failed.value
    assert err.code == "CLONE_VERIFICATION_FAILED"
    assert "personal_data" in err.message and "x_loyalty_card.card_no" in err.message
    assert err.details["verification"]["checks"]["personal_data"]["leaked"] == {"x_loyalty_card.card_no": 3}
    assert set(_stage_clones(pg, stage)) == existing
    assert not pg.exists(err.details["database"])
    assert not ctx.host.filestore_dir(stage, err.details["database"]).exists()


def test_neutralize_failure_drops_the_copy(production: dict[str, Any]) -> None:
    """`odoo neutralize` fails (run as the production role, which may not reach the copy): error with its log."""
    ctx, prod, stage = production["ctx"], production["env"], production["stage"]
    existing = set(_stage_clones(ctx.pg, stage))
    stage_files = ctx.host.filestore_dir(stage, "x").parent
    files_before = set(stage_files.iterdir()) if stage_files.exists() else set()
    with pytest.raises(OdooOpsError) as failed:
        clone_to_scratch(ctx, prod, stage, neutralize=True, mask=False, run_odoo=production["run_prod"])
    assert failed.value.code == "NEUTRALIZE_FAILED" and "odoo neutralize -d oo_clone_" in failed.value.message
    # Refused at the door (pg_hba: the production role is no member of the copy's access role) or by the ACL.
    assert any(why in failed.value.details["log"] for why in ("no pg_hba.conf entry", "permission denied"))
    assert set(_stage_clones(ctx.pg, stage)) == existing
    assert set(stage_files.iterdir()) == files_before


def test_clone_into_unknown_environment(production: dict[str, Any], tmp_path: Path) -> None:
    ctx = production["ctx"]
    with pytest.raises(OdooOpsError) as missing:
        clone_to_scratch(ctx, production["env"], "no-such-env-" + tmp_path.name[-6:].lower(), neutralize=True,
                         mask=True)
    assert missing.value.code == "CLONE_TARGET_MISSING" and "odooops apply" in missing.value.remediation


def test_open_session_on_source_is_terminated(production: dict[str, Any], pg_conn_params: dict[str, Any]) -> None:
    ctx, prod, stage = production["ctx"], production["env"], production["stage"]
    held = psycopg.connect(dbname=prod, autocommit=True, application_name="prod-web", **pg_conn_params)
    result = clone_to_scratch(ctx, prod, stage, neutralize=False, mask=False)
    try:
        with pytest.raises(psycopg.OperationalError):
            held.execute("SELECT 1")
        assert result.verification["ok"] and set(result.verification["checks"]) == {"new_identity"}
        assert q(ctx.pg, "postgres", "SELECT datallowconn FROM pg_database WHERE datname = %s", (prod,)) == [(True,)]
    finally:
        held.close()
        ctx.pg.drop(result.db)
        shutil.rmtree(result.filestore)
