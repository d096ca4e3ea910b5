"""The error table covers every code the source raises, and only those; kinds decide everything else."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from reconciler.core.error_codes import (
    ERRORS,
    KINDS,
    audit_outcome,
    describe,
    exit_code,
    http_status,
    retryable,
    suggestions,
)

ROOT = Path(__file__).resolve().parents[2]
# Constructors of coded errors: the code is the first argument (WebhookError: the second, after the status).
CODE_ARG = {"OdooOpsError": 0, "ApiError": 0, "ClientError": 0, "unauthorized": 0, "WebhookError": 1}
# Constructors whose literal `status` must agree with the kind (WebhookError: its first argument).
STATUS_ARG: dict[str, int | str] = {"ApiError": "status", "WebhookError": 0}


def _name(call: ast.Call) -> str | None:
    f = call.func
    return f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else None


def _literals(node: ast.expr | None) -> list[str]:
    """The string constants a code argument can be (a conditional names two)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.IfExp):
        return _literals(node.body) + _literals(node.orelse)
    return []


def raised() -> dict[str, list[str]]:
    """code -> where it is raised, for every call of an error constructor with a literal code."""
    out: dict[str, list[str]] = {}
    for path in sorted((ROOT / "reconciler").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call) or _name(node) not in CODE_ARG:
                continue
            index = CODE_ARG[_name(node)]  # type: ignore[index]
            arg = node.args[index] if len(node.args) > index else None
            for code in _literals(arg):
                out.setdefault(code, []).append(f"{path.relative_to(ROOT)}:{node.lineno}")
    return out


def literal_statuses() -> list[tuple[str, int, str]]:
    out = []
    for path in sorted((ROOT / "reconciler").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call) or _name(node) not in STATUS_ARG:
                continue
            where = STATUS_ARG[_name(node)]  # type: ignore[index]
            status = (dict((k.arg, k.value) for k in node.keywords).get(where) if isinstance(where, str)
                      else node.args[where] if len(node.args) > where else None)
            codes = _literals(node.args[CODE_ARG[_name(node)]] if len(node.args) > CODE_ARG[_name(node)]  # type: ignore[index]
                              else None)
            if isinstance(status, ast.Constant) and isinstance(status.value, int):
                out += [(code, status.value, f"{path.relative_to(ROOT)}:{node.lineno}") for code in codes]
    return out


def test_the_scan_finds_the_raise_sites() -> None:
    found = raised()
    assert len(found) > 150
    assert "ENV_BUSY" in found and "WEBHOOK_BAD_SIGNATURE" in found and "TOKEN_EXPIRED" in found
    assert {"ENV_FAILED", "ENV_BLOCKED"} <= set(found)  # both branches of a conditional code


def test_every_raised_code_has_an_entry() -> None:
    missing = {code: where[0] for code, where in raised().items() if code not in ERRORS}
    assert not missing, f"add these codes to reconciler/core/error_codes.py (kind, what, fix): {missing}"


def test_every_entry_is_raised_or_marked_dynamic() -> None:
    found = raised()
    dead = sorted(code for code, e in ERRORS.items() if code not in found and not e.dynamic)
    assert not dead, f"no literal raise of these codes: remove them, or mark them dynamic=True: {dead}"
    stale = sorted(code for code, e in ERRORS.items() if code in found and e.dynamic)
    assert not stale, f"these codes are raised literally: drop dynamic=True: {stale}"


def test_literal_statuses_agree_with_the_kind() -> None:
    wrong = [(code, status, http_status(code), where) for code, status, where in literal_statuses()
             if status != http_status(code)]
    assert not wrong, f"(code, status at the raise site, status of its kind, where): {wrong}"


def test_entries_are_complete() -> None:
    for code, e in ERRORS.items():
        assert code == code.upper() and " " not in code, code
        assert e.kind in KINDS, code
        assert e.what.strip() and e.fix.strip() and e.cause.strip(), code


@pytest.mark.parametrize(("code", "status", "audit", "exit", "retry"), [
    ("PROMOTION_GATE_FAILED", 409, "refused", 3, False),  # was "failed" in the audit trail
    ("ENV_BLOCKED", 409, "refused", 3, False),
    ("DESTROY_NEEDS_CONFIRMATION", 409, "refused", 3, False),
    ("BACKUP_REQUIRED", 409, "refused", 3, False),
    ("ENV_BUSY", 409, "failed", 1, True),
    ("ENV_NOT_DEPLOYED", 409, "refused", 1, False),
    ("DOCKER_UNREACHABLE", 503, "failed", 1, True),
    ("HOST_NOT_CONFIGURED", 503, "failed", 1, False),
    ("TOKEN_EXPIRED", 401, "refused", 4, False),
    ("PRODUCTION_ROLE_REQUIRED", 403, "refused", 4, False),
    ("ENV_NOT_FOUND", 404, "refused", 1, False),
    ("USAGE", 400, "refused", 1, False),
    ("BACKUP_CORRUPT", 422, "failed", 1, False),
    ("RESTORE_DISK_FULL", 507, "failed", 1, False),
])
def test_kinds_decide_status_audit_exit_and_retry(code: str, status: int, audit: str, exit: int, retry: bool) -> None:
    assert (http_status(code), audit_outcome(code), exit_code(code), retryable(code)) == (
        status, f"{audit}:{code}", exit, retry)


def test_a_code_outside_the_table_is_an_explained_failure() -> None:
    assert (http_status("NO_SUCH_CODE"), audit_outcome("NO_SUCH_CODE"), exit_code("NO_SUCH_CODE"),
            retryable("NO_SUCH_CODE")) == (422, "failed:NO_SUCH_CODE", 1, False)


def test_describe_and_suggestions() -> None:
    info = describe("ENV_BUSY")
    assert info["kind"] == "busy" and info["retry"] is True and info["fix"]
    assert suggestions("ENV_BUSSY")[0] == "ENV_BUSY"
    assert suggestions("env-not-found")[0] == "ENV_NOT_FOUND"
    assert suggestions("ZZZZZZZZ") == []


def test_the_error_reference_is_current(tmp_path: Path) -> None:
    ok = subprocess.run([sys.executable, "scripts/error_reference.py", "--check"], cwd=ROOT, capture_output=True,
                        text=True, check=False)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    page = (ROOT / "docs" / "errors.md").read_text(encoding="utf-8")
    for code in ERRORS:
        assert f'<a id="{code}"></a>' in page and f"### {code}\n" in page
    stale = tmp_path / "errors.md"
    stale.write_text(page.replace("### ENV_BUSY", "### ENV_BUSY_OLD"), encoding="utf-8")
    bad = subprocess.run([sys.executable, "scripts/error_reference.py", "--check", "--output", str(stale)], cwd=ROOT,
                         capture_output=True, text=True, check=False)
    assert bad.returncode == 1 and "out of date" in bad.stderr
