"""The human lines of `odooops db backup --verify` and `db clone` (the server's JSON is tested end to end
in tests/cli/test_data_workflow.py)."""

from __future__ import annotations

from reconciler.cli.db import source_text, verification_text


def test_a_verified_backup_says_ok_never_none() -> None:
    data = {"id": "2026-12-06-16-05-37-a3b4", "verified_at": "2026-12-06T16:05:40+00:00",
            "verification": {"ok": True, "modules": 42, "seconds": {"checksums": 0.1, "restore": 1.234}}}
    assert verification_text("production", data) == \
        "ok (42 modules, restored in 1.234 s, at 2026-12-06T16:05:40+00:00)"
    assert verification_text("production", {"verification": {"ok": False}}) == "FAILED"
    assert verification_text("production", {"id": "b1", "verification": None}) == \
        "not verified (odooops db verify production --backup b1)"


def test_a_clone_says_which_backup_of_production_it_came_from() -> None:
    data = {"source_backup": {"id": "b1", "age_s": 7200.4, "taken_now": False}}
    assert source_text("production", data) == "source  backup b1 of production (7200 s old)"
    fresh = {"source_backup": {"id": "b2", "age_s": 3, "taken_now": True}}
    assert source_text("production", fresh) == "source  backup b2 of production (3 s old, taken for this copy)"
    assert source_text("staging", {"source_backup": None}) == "source  staging's database"
