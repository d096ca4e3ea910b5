"""Rendering: StrictUndefined, valid JSON for hostile input, markers only where templates put them."""

import json

import pytest

from reconciler.core.desired import desired_state
from reconciler.render.artifacts import Renderer, fill, markers
from tests.core.helpers import default_policy, head

HOSTILE = [
    'feature/"; rm -rf / #',
    "feature/{{ 7*7 }}",
    "feature/@@secret:admin_passwd@@",
    "feature/$(touch /tmp/x)`id`",
    "feature/Ü\\n'quoted'",
    "feature/" + "x" * 250,
]


@pytest.mark.parametrize("branch", HOSTILE)
def test_hostile_branch_names_stay_data(branch: str) -> None:
    d = desired_state([head(branch)], {}, default_policy())
    [spec] = d.environments.values()
    out = Renderer().render(spec)
    container = json.loads(out["container.json"])
    assert container["labels"]["odooops.branch"] == branch
    assert json.loads(out["main.tf.json"])["module"]["env"]["env_name"] == spec.name
    assert json.loads(out["route.json"])["@id"] == f"odooops-{spec.name}"
    found = {m for text in out.values() for m in markers(text)}
    # odoo.conf holds the database password (never the container spec: no command line, no env var);
    # an ephemeral env sends mail to the catcher, so it also carries the catcher password
    expected = {"secret:admin_passwd", "secret:smtp_password", "secret:db_password"}
    assert found <= {m for m in found if m.startswith("platform:")} | expected
    assert expected <= found
    platform = {m.split(":", 1)[1]: f"<{m}>" for m in found if m.startswith("platform:")}
    secrets = {"admin_passwd": "SECRET", "smtp_password": "MAILPW", "db_password": "DBPW"}
    filled = fill(out["container.json"], platform, secrets)
    assert "SECRET" not in filled and "MAILPW" not in filled and "DBPW" not in filled
    assert json.loads(filled)["labels"]["odooops.branch"] == branch
    conf = fill(out["odoo.conf"], platform, secrets)
    # only the admin_passwd, db_password and smtp_password lines, never the branch comment
    assert conf.count("SECRET") == 1 and conf.count("MAILPW") == 1 and conf.count("DBPW") == 1


def test_plan_artifacts_hold_markers_not_secrets() -> None:
    d = desired_state([head("develop")], {}, default_policy())
    out = Renderer().render(d.environments["develop"])
    assert "admin_passwd = @@secret:admin_passwd@@" in out["odoo.conf"]
    assert "secret:admin_passwd" in markers(out["odoo.conf"])
    with pytest.raises(KeyError):
        fill(out["odoo.conf"], {}, {})


def test_production_root_module_guards_against_destroy() -> None:
    d = desired_state([head("main"), head("develop")], {}, default_policy())
    prod = json.loads(Renderer().render(d.environments["production"])["main.tf.json"])
    dev = json.loads(Renderer().render(d.environments["develop"])["main.tf.json"])
    assert prod["resource"]["terraform_data"]["production_guard"]["lifecycle"]["prevent_destroy"] is True
    assert "resource" not in dev and prod["module"]["env"]["production"] is True
