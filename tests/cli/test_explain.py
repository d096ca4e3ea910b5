"""`odooops explain CODE`: the error table's entry, offline."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from reconciler.cli.explain import explain_command
from reconciler.core.error_codes import ERRORS
from reconciler.errors import OdooOpsError


def test_explain_prints_the_entry() -> None:
    out = CliRunner().invoke(explain_command, ["ENV_BUSY"])
    assert out.exit_code == 0, out.output
    entry = ERRORS["ENV_BUSY"]
    assert out.output.startswith("ENV_BUSY (busy: HTTP 409")
    assert entry.what in out.output and entry.fix in out.output and entry.cause in out.output
    assert "docs/errors.md#ENV_BUSY" in out.output


def test_explain_json_and_a_lenient_spelling() -> None:
    out = CliRunner().invoke(explain_command, ["promotion-gate-failed", "--json"])
    assert out.exit_code == 0, out.output
    info = json.loads(out.output)
    assert info["code"] == "PROMOTION_GATE_FAILED" and info["kind"] == "refused"
    assert (info["http_status"], info["audit"], info["exit_code"], info["retry"]) == (409, "refused", 3, False)
    assert info["docs"] == "docs/errors.md#PROMOTION_GATE_FAILED"


def test_unknown_code_exits_2_with_close_matches() -> None:
    out = CliRunner().invoke(explain_command, ["ENV_BUSSY"])
    assert out.exit_code == 2
    assert "no error code 'ENV_BUSSY'" in out.output and "Did you mean: ENV_BUSY" in out.output
    as_json = CliRunner().invoke(explain_command, ["ENV_BUSSY", "--json"])
    assert as_json.exit_code == 2 and json.loads(as_json.output)["did_you_mean"][0] == "ENV_BUSY"


def test_unknown_code_without_any_match() -> None:
    out = CliRunner().invoke(explain_command, ["QQQQQQQQQQ"])
    assert out.exit_code == 2 and "Did you mean" not in out.output


def test_every_error_links_its_section(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ODOOOPS_ERROR_DOCS", raising=False)
    err = OdooOpsError("ENV_BUSY", "busy", "wait")
    assert err.to_dict()["docs"] == "docs/errors.md#ENV_BUSY"
    monkeypatch.setenv("ODOOOPS_ERROR_DOCS", "https://docs.example.com/odooops/errors.html")
    assert err.docs == "https://docs.example.com/odooops/errors.html#ENV_BUSY"


def test_explain_is_a_command_of_odooops() -> None:
    from reconciler.cli.main import main

    out = CliRunner().invoke(main, ["explain", "USAGE"])
    assert out.exit_code == 0 and out.output.startswith("USAGE (invalid: HTTP 400")
