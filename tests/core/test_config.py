"""`.odooops.yaml` validation: actionable errors with positions, limits, and normalised layers."""

import pytest

from reconciler.core.config import parse_config

SEED_EXAMPLE = """\
# .odooops.yaml (optional overrides)
environments:
  production:
    workers: 12
    backup_schedule: "0 */3 * * *"  # Every 3 hours
    resource_limits:
      cpu: "4000m"
      memory: "8Gi"
"""


def errors(text: str) -> list[dict]:
    result = parse_config(text)
    assert result["ok"] is False, result
    return result["errors"]


def test_the_seed_example_works_as_written() -> None:
    result = parse_config(SEED_EXAMPLE)
    assert result["ok"] is True
    prod = result["environments"]["production"]
    assert prod["workers"] == [12, "/environments/production/workers"]
    assert prod["cpu"] == [4.0, "/environments/production/resource_limits/cpu"]
    assert prod["memory_mib"][0] == 8192
    assert prod["backup_schedule"][0] == "0 */3 * * *"


def test_unknown_key_has_position_pointer_and_did_you_mean() -> None:
    [err] = errors('version: 1\nodoo:\n  verison: "19.0"\n')
    assert (err["line"], err["column"]) == (3, 3)
    assert err["pointer"] == "/odoo/verison"
    assert 'did you mean "version"' in err["message"]
    assert err["remediation"] == 'rename "verison" to "version"'


def test_unquoted_version_explains_yaml_number() -> None:
    [err] = errors("odoo:\n  version: 19.0\n")
    assert err["pointer"] == "/odoo/version" and err["line"] == 2
    assert "as a number" in err["message"]
    assert err["remediation"] == 'quote the value: "19.0"'


def test_wrong_type_and_bad_module_name() -> None:
    errs = errors('modules: [sale, Bad-Name]\ntiers:\n  dev:\n    workers: "4"\n')
    by_pointer = {e["pointer"]: e for e in errs}
    assert "technical name" in by_pointer["/modules/1"]["message"]
    assert by_pointer["/tiers/dev/workers"]["message"].startswith("expected an integer")
    assert by_pointer["/tiers/dev/workers"]["line"] == 4


def test_unsupported_odoo_version_lists_options() -> None:
    [err] = errors('odoo: {version: "16.0"}\n')
    assert "17.0, 18.0, 19.0" in err["remediation"]


def test_invalid_cron_is_reported_where_it_is() -> None:
    [err] = errors('environments:\n  production:\n    backup_schedule: "every day"\n')
    assert err["pointer"] == "/environments/production/backup_schedule"
    assert err["line"] == 3 and "cron" in err["message"]


def test_external_addons_need_a_pin() -> None:
    [err] = errors("addons:\n  external:\n    - {name: web, url: 'https://github.com/OCA/web.git'}\n")
    assert "commit" in err["remediation"]


def test_path_traversal_in_addons_path_is_refused() -> None:
    [err] = errors("addons: {paths: ['../../etc']}\n")
    assert err["pointer"] == "/addons/paths/0"


@pytest.mark.parametrize("text,needle", [
    ("a: [1,\n  b: c", "invalid YAML"),
    ("a: 1\na: 2\n", "duplicate key"),
    ("- 1\n- 2\n", "must be a mapping"),
    ("x: &a [1]\ny: {<<: *a}\n", "merge keys"),
])
def test_broken_yaml(text: str, needle: str) -> None:
    [err] = errors(text)
    assert needle in err["message"]
    assert err["line"] >= 1 and err["column"] >= 1 and err["remediation"]


def test_alias_bomb_is_stopped() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 8):
        refs = ", ".join([f"*a{i-1}"] * 10)
        lines.append(f"a{i}: &a{i} [{refs}]")
    [err] = errors("\n".join(lines) + "\n")
    assert "expands to more than" in err["message"]


def test_size_limit() -> None:
    [err] = errors("modules: [" + ", ".join(["sale"] * 60000) + "]\n")
    assert "limit" in err["message"]


def test_empty_file_is_valid_and_means_defaults() -> None:
    assert parse_config("")["ok"] is True
    assert parse_config("# only a comment\n")["ok"] is True


def test_quantities_and_ttl_are_normalised() -> None:
    result = parse_config(
        "tiers:\n  dev:\n    ttl: 3d\n    resource_limits: {cpu: 500m, memory: 1536Mi, storage: 20Gi}\n")
    dev = result["tiers"]["dev"]
    assert dev["ttl_hours"][0] == 72 and dev["cpu"][0] == 0.5
    assert dev["memory_mib"][0] == 1536 and dev["storage_gib"][0] == 20
