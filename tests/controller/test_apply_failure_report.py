"""A failed deploy as the user sees it: the failing test on the apply line and in `status`, and
`apply --retry-failed` counting the environment it redeployed."""

from __future__ import annotations

import json
from typing import Any

import pytest
from click.testing import CliRunner

from reconciler.cli.main import main
from tests.controller.test_apply_cli import host_env
from tests.example_repo import commit_file, git

REASON = "the approval threshold is 10000, the order says 9999"


def test_failed_tests_are_named_on_the_apply_line_in_status_and_retry_counts_a_redeploy(
        world: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in host_env(world).items():
        monkeypatch.setenv(k, v)
    runner = CliRunner()
    repo, branch = str(world["work"]), world["branch"]
    commit_file(world["work"], branch, "addons/acme_sale/tests/FAIL_TESTS", REASON + "\n", "break the tests")

    first = runner.invoke(main, ["apply", "--repo", repo, "--branch", branch, "--auto-approve"])
    assert first.exit_code == 1, first.output
    tests_lines = [ln for ln in first.output.splitlines() if " tests " in ln and "✗" in ln]
    assert len(tests_lines) == 1, first.output
    tests_line = tests_lines[0]
    assert "1 failed" in tests_line and REASON in tests_line, tests_line  # the reason, not an empty detail
    [failed_line] = [ln for ln in first.output.splitlines() if "FAILED" in ln]
    env = failed_line.split(":")[0]
    assert "create FAILED at tests: 1 failed" in failed_line and REASON in failed_line, failed_line
    assert "0 created, 0 updated, 0 redeployed, 0 destroyed, 0 blocked, 0 unchanged; 1 failed: " \
        f"{env} (create)." in first.output, first.output

    status = runner.invoke(main, ["status", "--repo", repo])
    assert status.exit_code == 0, status.output
    [why] = [ln for ln in status.output.splitlines() if "failed at tests:" in ln]
    assert REASON in why, status.output
    rows = json.loads(runner.invoke(main, ["status", "--repo", repo, "--json"]).output)["environments"]
    [row] = [r for r in rows if r["branch"] == branch]
    assert row["state"] == "failed" and REASON in row["reason"] and row["failed_step"] == "tests"
    excerpt = row["error"]["log_excerpt"]
    assert REASON in excerpt and excerpt.splitlines()[0].startswith(("ERROR", "CRITICAL")), excerpt

    # Without --retry-failed the failed commit is not retried; with it, it is, and the summary says so.
    again = runner.invoke(main, ["apply", "--repo", repo, "--branch", branch, "--auto-approve"])
    assert again.exit_code == 0 and "Nothing to do" in again.output, again.output
    retry = runner.invoke(main, ["apply", "--repo", repo, "--branch", branch, "--auto-approve", "--retry-failed"])
    assert retry.exit_code == 1, retry.output
    assert "redeploy FAILED at tests" in retry.output, retry.output
    assert f"--retry-failed: also redeploys {env} (last deploy failed)." in retry.output, retry.output
    summary = next(ln for ln in retry.output.splitlines() if ln.startswith("Apply finished"))
    # redeployed, and failed again: not "unchanged"
    assert ": 0 created, 0 updated, 0 redeployed, 0 destroyed, 0 blocked, 0 unchanged; 1 failed: " \
        f"{env} (redeploy)." in summary, summary

    # once the tests pass, a retry counts as one redeploy done
    commit_file(world["work"], branch, "addons/acme_sale/tests/FAIL_TESTS", "", "fixed")
    git(world["work"], "rm", "-q", "addons/acme_sale/tests/FAIL_TESTS")
    git(world["work"], "commit", "-q", "-m", "tests fixed")
    fixed = runner.invoke(main, ["apply", "--repo", repo, "--branch", branch, "--auto-approve"])
    assert fixed.exit_code == 0, fixed.output
    assert ": 0 created, 0 updated, 1 redeployed, 0 destroyed, 0 blocked, 0 unchanged." in fixed.output, fixed.output


def test_a_failed_install_names_odoos_error_on_the_apply_line_and_in_status(
        world: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in host_env(world).items():
        monkeypatch.setenv(k, v)
    runner = CliRunner()
    repo, branch = str(world["work"]), world["branch"]
    # the stand-in runs a module's data/data.sql on install: a broken one fails the install as Odoo would
    commit_file(world["work"], branch, "addons/acme_sale/data/data.sql", "SELECT * FROM acme_missing_table;\n",
                "a data file that cannot load")
    out = runner.invoke(main, ["apply", "--repo", repo, "--branch", branch, "--auto-approve"])
    assert out.exit_code == 1, out.output
    database_lines = [ln for ln in out.output.splitlines() if " database " in ln and "✗" in ln]
    assert len(database_lines) == 1, out.output
    assert "exited with 255: " in database_lines[0] and "acme_missing_table" in database_lines[0], database_lines
    rows = json.loads(runner.invoke(main, ["status", "--repo", repo, "--json"]).output)["environments"]
    [row] = [r for r in rows if r["branch"] == branch]
    assert row["failed_step"] == "database" and "acme_missing_table" in row["reason"], row
    assert row["error"]["log_excerpt"].startswith("CRITICAL "), row["error"]["log_excerpt"]
