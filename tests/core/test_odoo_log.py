"""reconciler.core.odoo_log on logs of real Odoo 19 runs (tests/golden/odoo19-logs/, captured from the
official-contract image running the example project's addons: passing tests, a failed assertion, an
access error, a setUpClass error, an install that fails on a view and one that fails on an import)."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.core import odoo_log

LOGS = Path(__file__).resolve().parents[1] / "golden" / "odoo19-logs"


def read(name: str) -> str:
    return (LOGS / name).read_text(encoding="utf-8")


# log -> (headline, Odoo's own counts (failed, errors, run) or None)
EXPECTED = {
    "tests-passed.log": ("", (0, 0, 2)),
    "tests-assertion-failure.log": (
        "1 failed: TestAcmeSaleOrder.test_small_order_confirms_without_approval — AssertionError: 500.0 != 600.0",
        (1, 0, 2)),
    "tests-setupclass-error-and-failure.log": (
        "2 failed: TestAcmeChannels.setUpClass — ValueError: External ID not found in the system: "
        "acme_sale.channel_web (+1 more)", (1, 1, 2)),
    "install-import-error.log": (
        "Couldn't load module acme_stock_sync — ModuleNotFoundError: No module named 'acme_warehouse_client'", None),
    "install-view-error.log": (
        "Failed to load registry — ParseError: while parsing /mnt/extra-addons/acme_broken/views/"
        "sale_order_views.xml:3 Field \"acme_delivery_window\" does not exist in model \"sale.order\"", None),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_headline_of_real_odoo_logs(name: str) -> None:
    summary = odoo_log.parse(read(name))
    headline, counts = EXPECTED[name]
    assert summary.headline() == headline
    assert summary.counts == counts
    assert summary.tests_ran == (counts is not None)


def test_the_access_error_of_the_finding_names_the_user_the_right_and_the_model() -> None:
    # The example's first test, run as a salesman on an order of another user (issue 11, finding 10).
    summary = odoo_log.parse(read("tests-access-error.log"))
    [failure] = summary.failures
    assert (failure.kind, failure.test, failure.addon) == (
        "ERROR", "TestAcmeSaleOrder.test_small_order_confirms_without_approval", "acme_sale")
    assert failure.reason.startswith("AccessError: Uh-oh!")  # module path dropped, message lines joined
    assert "Sorry, Sam Salesman (id=7) doesn't have 'write' access to: - Sales Order (sale.order)" in failure.reason
    assert summary.headline().startswith(
        "1 failed: TestAcmeSaleOrder.test_small_order_confirms_without_approval — AccessError: ")
    assert len(summary.headline()) <= odoo_log.MAX_HEADLINE


def test_failures_keep_their_order_kind_and_addon() -> None:
    summary = odoo_log.parse(read("tests-setupclass-error-and-failure.log"))
    assert [(f.kind, f.test, f.addon) for f in summary.failures] == [
        ("ERROR", "TestAcmeChannels.setUpClass", "acme_sale"),  # logged by odoo.tests.suite: addon from the path
        ("FAIL", "TestAcmeSaleOrder.test_small_order_confirms_without_approval", "acme_sale"),
    ]
    assert summary.failed_tests == 2
    assert summary.to_json()["counts"] == {"failed": 1, "errors": 1, "run": 2}


@pytest.mark.parametrize("name", ["tests-access-error.log", "tests-assertion-failure.log",
                                  "tests-setupclass-error-and-failure.log"])
def test_excerpt_of_failed_tests_is_their_records_in_whole_lines(name: str) -> None:
    text = read(name)
    summary = odoo_log.parse(text)
    out = odoo_log.excerpt(text, 2000)
    assert len(out) <= 2000
    first = out.splitlines()[0]
    assert first.startswith("ERROR odoo.") and (": ERROR: " in first or ": FAIL: " in first), first
    for failure in summary.failures:
        assert failure.test.split(".")[0] in out
    last_exception = summary.failures[-1].reason.split(":")[0]
    assert any(line.split(":")[0].endswith(last_exception) for line in out.splitlines())
    whole = {t.rstrip() for t in text.splitlines()}
    for line in out.splitlines():  # whole lines of the log, record headers and the frames-left-out marker
        assert line in whole or line.startswith(("ERROR ", "CRITICAL ", "  ... (")), line


def test_excerpt_of_a_failed_install_has_the_first_error_and_the_traceback() -> None:
    text = read("install-import-error.log")
    out = odoo_log.excerpt(text)
    lines = out.splitlines()
    assert lines[0] == "CRITICAL odoo.modules.module: Couldn't load module acme_stock_sync"
    assert lines[1].startswith("CRITICAL odoo.service.server: Failed to initialize database")
    assert "  ... (5 frames)" in lines  # the registry's own frames are left out
    assert lines[-1] == "ModuleNotFoundError: No module named 'acme_warehouse_client'"
    assert "warehouse_api.py" in out  # the addon's own frame stays


def test_excerpt_without_errors_is_the_tail_starting_at_a_line() -> None:
    text = read("tests-passed.log")
    out = odoo_log.excerpt(text, 300)
    assert len(out) <= 300 and text.endswith(out)
    assert out.startswith("2026-") and (text[: -len(out)].endswith("\n"))


def test_tail_and_head_never_cut_a_line() -> None:
    text = "first line\nsecond line\nthird line\n"
    assert odoo_log.tail(text, 100) == text
    assert odoo_log.tail(text, 15) == "third line\n"
    assert odoo_log.head(text, 25) == "first line\nsecond line"
    assert odoo_log.head("x" * 50, 10) == "x" * 10  # a single long line is cut: nothing else to keep


def test_a_log_without_odoo_records_says_nothing() -> None:
    summary = odoo_log.parse("docker: Error response from daemon: no such image\n")
    assert summary.headline() == "" and summary.failures == () and summary.counts is None


def test_stand_in_format_is_read_too() -> None:
    # tests/standin_odoo logs `FAIL: odoo.addons.<addon>.tests: <reason>` from odoo.tests.result.
    log = ("2026-12-06 10:00:00,000 7 ERROR db odoo.tests.result: FAIL: odoo.addons.acme_sale.tests: "
           "threshold moved\n2026-12-06 10:00:00,001 7 ERROR db odoo.tests.result: 1 failed, 0 error(s) "
           "of 1 tests when loading database 'db'\n")
    summary = odoo_log.parse(log)
    assert summary.headline() == "1 failed: odoo.addons.acme_sale.tests: threshold moved"
    assert summary.failures[0].addon == "acme_sale"
