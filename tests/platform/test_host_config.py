"""The host file (host.yaml): schema errors with line and column, secrets only by file, and for every setting
the precedence variable > host file > default; `odooops host show` prints each with its origin."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from reconciler.cli.main import main
from reconciler.core.host_config import parse_host_config, schema
from reconciler.errors import OdooOpsError
from reconciler.platform.host import (
    HOST_CONFIG_ENV,
    PASSWORD_ENV,
    REDACTED,
    REQUIRED,
    SETTINGS,
    HostSettings,
    Setting,
    host_setting,
    resolve_host,
)
from tests.example_repo import ROOT

GOLDEN = ROOT / "tests" / "golden" / "host-show.txt"
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"
PASSWORD = "s3cr3t-pg-admin-password"


def _invalid(text: str) -> OdooOpsError:
    with pytest.raises(OdooOpsError) as err:
        parse_host_config(text, "/etc/odooops/host.yaml")
    assert err.value.code == "HOST_CONFIG_INVALID"
    return err.value


def test_a_type_error_names_file_line_column_and_the_fix() -> None:
    err = _invalid("version: 1\npostgres:\n  host: db.internal\n  port: fifty\n")
    assert err.message.startswith("/etc/odooops/host.yaml:4:3: expected an integer at /postgres/port"), err.message
    assert err.details["line"] == 4 and err.details["column"] == 3 and err.details["pointer"] == "/postgres/port"
    assert "write an integer at /postgres/port" in err.remediation


def test_an_unknown_key_gets_did_you_mean_at_its_own_position() -> None:
    err = _invalid("router:\n  caddy_admin: http://127.0.0.1:2019\n  caddy_sever: odooops\n")
    assert err.message == ('/etc/odooops/host.yaml:3:3: unknown key "caddy_sever" in /router; '
                           'did you mean "caddy_server"?')
    assert err.remediation.startswith('rename "caddy_sever" to "caddy_server"')
    top = _invalid("base_domian: example.com\n")
    assert 'did you mean "base_domain"?' in top.message and top.details["line"] == 1


def test_every_problem_is_in_the_details_in_file_order() -> None:
    err = _invalid("postgres:\n  port: 0\nlimits:\n  snapshot_max_age_s: -1\n")
    assert [(e["line"], e["pointer"]) for e in err.details["errors"]] == [
        (2, "/postgres/port"), (4, "/limits/snapshot_max_age_s")]
    assert "(and 1 more problem)" in err.message


def test_broken_yaml_names_the_position() -> None:
    err = _invalid("postgres:\n  host: [unclosed\n")
    assert err.message.startswith("/etc/odooops/host.yaml:3:1: invalid YAML"), err.message


@pytest.mark.parametrize("text", [
    "postgres:\n  host: db\n  password: hunter2hunter2\n",
    "backups:\n  store:\n    s3:\n      bucket: b\n      secret_access_key: abc\n",
    "terraform:\n  backend:\n    s3:\n      bucket: b\n      secret_key: abc\n",
])
def test_a_secret_written_inline_is_refused_with_the_file_to_use_instead(text: str) -> None:
    err = _invalid(text)
    assert "holds a secret inline" in err.message
    assert "_file: /etc/odooops/" in err.remediation and "chmod 600" in err.remediation
    # the value itself never travels in the error
    assert "hunter2" not in json.dumps(err.to_dict()) and "abc" not in err.message


def test_an_inline_password_is_refused_when_the_file_is_loaded() -> None:
    err = _invalid("postgres:\n  password: hunter2hunter2\n")
    assert err.message.startswith("/etc/odooops/host.yaml:2:3: postgres.password holds a secret inline")
    assert "password_file: /etc/odooops/password" in err.remediation


def _schema_leaves(node: dict[str, Any], prefix: str = "") -> set[str]:
    out: set[str] = set()
    for key, sub in node.get("properties", {}).items():
        if key in ("$schema", "version"):
            continue
        dotted = f"{prefix}{key}"
        if "properties" in sub and key != "store":
            out |= _schema_leaves(sub, dotted + ".")
        else:
            out.add(dotted)
    return out


def test_the_schema_and_the_settings_table_name_the_same_keys() -> None:
    in_file = {s.key for s in SETTINGS if s.in_file}
    assert _schema_leaves(schema()) == in_file
    assert len({s.variable for s in SETTINGS}) == len(SETTINGS)


def _file_value(s: Setting) -> Any:
    """The example of a setting as the host file writes it."""
    if s.kind in ("pairs",):
        src, _, dst = s.example.partition("=")
        return {src: dst}
    if s.kind == "json":
        return json.loads(s.example)
    if s.kind == "flag":
        return True
    if s.kind in ("port", "count"):
        return int(s.example)
    if s.kind == "seconds":
        return float(s.example)
    return s.example


def _nest(pairs: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"version": 1}
    for key, value in pairs.items():
        node = out
        *parents, leaf = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return out


@pytest.fixture()
def password_file(tmp_path: Path) -> Path:
    path = tmp_path / "pg.password"
    path.write_text(PASSWORD + "\n")
    path.chmod(0o600)
    return path


@pytest.fixture()
def full_file(tmp_path: Path, password_file: Path) -> Path:
    """A host file that sets every setting to its example (the password through its file)."""
    values = {s.key: _file_value(s) for s in SETTINGS if s.in_file}
    values["postgres.password_file"] = str(password_file)
    path = tmp_path / "host.yaml"
    path.write_text(yaml.safe_dump(_nest(values), sort_keys=False))
    return path


def _variable_text(s: Setting) -> str:
    return {"flag": "0", "port": "6543", "count": "7", "seconds": "12.5", "pairs": "a=b"}.get(
        s.kind, '{"local": "/from/variable"}' if s.kind == "json" else "/from/variable")


@pytest.mark.parametrize("setting", [s for s in SETTINGS if s.kind != "secret"], ids=lambda s: s.key)
def test_precedence_variable_then_file_then_default(setting: Setting, full_file: Path, tmp_path: Path) -> None:
    env = {HOST_CONFIG_ENV: str(full_file), "XDG_CONFIG_HOME": str(tmp_path / "cfg"),
           "XDG_STATE_HOME": str(tmp_path / "st")}
    by_key = {r.setting.key: r for r in resolve_host(env)[2]}
    line = full_file.read_text().splitlines()
    from_file = by_key[setting.key]
    assert from_file.source == "file" and from_file.origin.startswith(f"{full_file}:")
    # the origin's line is the line of that key in the file
    leaf = setting.key.rsplit(".", 1)[-1]
    assert line[int(from_file.origin.rsplit(":", 1)[1]) - 1].strip().startswith(f"{leaf}:")

    raw = _variable_text(setting)
    if setting.key == "postgres.password_file":  # the password is read from it: a real file
        raw = str(tmp_path / "variable.password")
        Path(raw).write_text("from-variable-file\n")
        Path(raw).chmod(0o600)
    over = {r.setting.key: r for r in resolve_host({**env, setting.variable: raw})[2]}[setting.key]
    assert over.source == "variable" and over.origin == f"variable {setting.variable}"
    assert over.value != from_file.value and host_setting(setting.key, {**env, setting.variable: raw}) == over.value

    bare = {r.setting.key: r for r in resolve_host({"XDG_CONFIG_HOME": str(tmp_path / "cfg"),
                                                    "XDG_STATE_HOME": str(tmp_path / "st"),
                                                    HOST_CONFIG_ENV: str(tmp_path / "empty.yaml")})[2]}
    # an empty host file: every setting falls back to its default (or is missing when required)
    assert bare[setting.key].origin == "default"
    assert bare[setting.key].source == ("missing" if setting.default is REQUIRED else "default")


@pytest.fixture(autouse=True)
def _empty_file(tmp_path: Path) -> None:
    (tmp_path / "empty.yaml").write_text("# nothing here\n")


def test_the_password_comes_from_the_variable_then_the_named_file(full_file: Path, password_file: Path) -> None:
    env = {HOST_CONFIG_ENV: str(full_file)}
    assert host_setting("postgres.password", env) == PASSWORD
    assert host_setting("postgres.password", {**env, PASSWORD_ENV: "from-variable"}) == "from-variable"
    other = password_file.with_name("other.password")
    other.write_text("other-password\n")
    other.chmod(0o600)
    assert host_setting("postgres.password", {**env, "ODOOOPS_PG_PASSWORD_FILE": str(other)}) == "other-password"
    other.chmod(0o644)
    with pytest.raises(OdooOpsError) as err:
        host_setting("postgres.password", {**env, "ODOOOPS_PG_PASSWORD_FILE": str(other)})
    assert err.value.code == "HOST_SECRET_FILE_UNREADABLE" and f"chmod 600 {other}" == err.value.remediation


def test_a_missing_required_setting_names_setting_key_variable_and_a_snippet(tmp_path: Path) -> None:
    env = {HOST_CONFIG_ENV: str(tmp_path / "empty.yaml"), "ODOOOPS_PG_HOST": "db", "ODOOOPS_PG_PORT": "5432",
           "ODOOOPS_PG_USER": "odooops", "DOCKER_HOST": "unix:///run/docker.sock",
           "ODOOOPS_ROUTER_HTTP": "http://127.0.0.1:80"}
    with pytest.raises(OdooOpsError) as err:
        HostSettings.from_env(tmp_path / "state", env)
    e = err.value
    assert e.code == "HOST_NOT_CONFIGURED"
    assert e.message == ("required host settings are not set: postgres.password (host file key "
                         "postgres.password_file, variable ODOOOPS_PG_PASSWORD_FILE or ODOOOPS_PG_PASSWORD), "
                         "router.caddy_admin (variable ODOOOPS_CADDY_ADMIN)")
    assert e.details["snippet"] == ("postgres:\n  password_file: /etc/odooops/pg.password\n"
                                    "router:\n  caddy_admin: http://127.0.0.1:2019\n")
    assert str(tmp_path / "empty.yaml") in e.remediation and "scripts/" not in e.remediation + e.message
    # the snippet is a valid host file
    parse_host_config(e.details["snippet"], "snippet")


def test_a_named_host_file_must_exist_the_default_may_not(tmp_path: Path) -> None:
    with pytest.raises(OdooOpsError) as err:
        resolve_host({HOST_CONFIG_ENV: str(tmp_path / "nope.yaml")})
    assert err.value.code == "HOST_CONFIG_NOT_FOUND" and str(tmp_path / "nope.yaml") in err.value.message
    path, file, _ = resolve_host({})
    assert path == Path("/etc/odooops/host.yaml") and (file is None) == (not path.exists())


def _clean_env(tmp_path: Path, **extra: str) -> dict[str, str | None]:
    """CliRunner's environment: none of this process's host variables, fixed XDG directories."""
    env: dict[str, str | None] = {k: None for k in os.environ if k.startswith("ODOOOPS_") or k == "DOCKER_HOST"}
    env.update({"XDG_CONFIG_HOME": str(tmp_path / "cfg"), "XDG_STATE_HOME": str(tmp_path / "st"), **extra})
    return env


SHOWN_FILE = """\
version: 1
state_dir: {tmp}/state
base_domain: odoo.example.com
postgres:
  host: 10.0.0.5
  port: 5432
  admin_user: odooops
  password_file: {tmp}/pg.password
  bin_dir: /usr/lib/postgresql/15/bin
docker:
  host: unix:///run/docker.sock
router:
  caddy_admin: http://127.0.0.1:2019
  http: http://127.0.0.1:80
backups:
  store:
    s3:
      bucket: odoo-backups
      endpoint_url: https://s3.example.com
keys:
  audit: /etc/odooops/audit.key
limits:
  template_cap_count: 2
"""


def test_host_show_golden(tmp_path: Path, password_file: Path) -> None:
    host_file = tmp_path / "host.yaml"
    host_file.write_text(SHOWN_FILE.format(tmp=tmp_path))
    env = _clean_env(tmp_path, ODOOOPS_PG_PORT="6432", ODOOOPS_SNAPSHOT_MAX_AGE_S="3600")
    result = CliRunner().invoke(main, ["--host-config", str(host_file), "host", "show"], env=env,
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    # columns are as wide as the longest value, and the temporary directory's name varies in length
    text = re.sub(r" {2,}", "  ", result.output.replace(str(tmp_path), "<tmp>"))
    if UPDATE:
        GOLDEN.write_text(text, encoding="utf-8")
    assert text == GOLDEN.read_text(encoding="utf-8"), "host-show.txt changed; rerun with UPDATE_GOLDEN=1 if intended"


def test_host_show_json_redacts_secrets_and_names_origins(tmp_path: Path, password_file: Path) -> None:
    host_file = tmp_path / "host.yaml"
    host_file.write_text(SHOWN_FILE.format(tmp=tmp_path))
    backend = '{"s3": {"bucket": "tf", "secret_key": "tf-secret-key-value", "access_key_id": "AKIAEXAMPLE0000"}}'
    for extra in ({}, {PASSWORD_ENV: "inline-variable-password"}):
        env = _clean_env(tmp_path, ODOOOPS_TF_BACKEND=backend, **extra)
        result = CliRunner().invoke(main, ["--host-config", str(host_file), "host", "show", "--json"], env=env,
                                    catch_exceptions=False)
        assert result.exit_code == 0, result.output
        for secret in (PASSWORD, "inline-variable-password", "tf-secret-key-value", "AKIAEXAMPLE0000"):
            assert secret not in result.output
        doc = json.loads(result.output)
        rows = {r["setting"]: r for r in doc["settings"]}
        assert doc["host_file"] == {"path": str(host_file), "read": True} and doc["missing"] == []
        assert rows["postgres.password"]["value"] == REDACTED
        assert rows["terraform.backend"]["value"] == {"s3": {"bucket": "tf", "secret_key": REDACTED,
                                                             "access_key_id": REDACTED}}
        assert rows["postgres.host"] == {"setting": "postgres.host", "variable": "ODOOOPS_PG_HOST",
                                         "value": "10.0.0.5", "source": "file", "origin": f"{host_file}:5"}
        assert rows["router.caddy_server"]["source"] == "default"
    assert rows["postgres.password"]["origin"] == f"variable {PASSWORD_ENV}"


def test_the_documented_example_is_valid_and_every_setting_is_documented() -> None:
    doc = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    section = doc[doc.index("## Host configuration file"):]
    example = section[section.index("### Full example"):].split("```yaml\n", 1)[1].split("```", 1)[0]
    parsed = parse_host_config(example, "docs/configuration.md")
    assert {s.key for s in SETTINGS if s.in_file} == {s.key for s in SETTINGS if s.in_file and parsed.get(s.key)}
    table = section[section.index("### Settings"):]
    for s in SETTINGS:
        if s.in_file:
            assert f"| `{s.key}` | `{s.variable}`" in table, f"{s.key} ({s.variable}) is not in the settings table"
        else:
            assert f"`{s.variable}`" in section


def test_host_show_lists_what_cannot_be_read_instead_of_failing(tmp_path: Path) -> None:
    host_file = tmp_path / "host.yaml"
    host_file.write_text(SHOWN_FILE.format(tmp=tmp_path))  # its password file was never written
    env = _clean_env(tmp_path, ODOOOPS_PG_PORT="sixty", ODOOOPS_ROUTER_HTTP="")
    result = CliRunner().invoke(main, ["--host-config", str(host_file), "host", "show", "--json"], env=env,
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["errors"] == ["postgres.port", "postgres.password"] and doc["missing"] == []
    rows = {r["setting"]: r for r in doc["settings"]}
    assert rows["postgres.port"]["origin"] == "error HOST_NOT_CONFIGURED: ODOOOPS_PG_PORT='sixty' is not a port number"
    assert rows["router.http"]["source"] == "file"  # an empty variable counts as unset
    text = CliRunner().invoke(main, ["--host-config", str(host_file), "host", "show"], env=env).output
    assert "settings that cannot be read: postgres.port, postgres.password" in text
    with pytest.raises(OdooOpsError) as err:  # serve, apply: the first problem stops them
        HostSettings.from_env(None, {HOST_CONFIG_ENV: str(host_file), "ODOOOPS_PG_PORT": "sixty"})
    assert err.value.code == "HOST_NOT_CONFIGURED"
