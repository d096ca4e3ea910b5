"""The audit trail: privileged operations are logged; any edit, deletion, reorder or truncation is detected."""

from __future__ import annotations

import json
import threading
from pathlib import Path

from reconciler.api.audit import AuditLog, entry_hash
from tests.api.conftest import ApiServer


def _log(tmp_path: Path, n: int = 5) -> AuditLog:
    log = AuditLog(tmp_path / "audit" / "audit.jsonl")
    for i in range(n):
        log.append(actor="alice", scopes=["admin"], action="env.destroy", target=f"env-{i}",
                   arguments={"confirm": True, "password": "hunter2", "nested": {"token": "t0k"}}, result="ok")
    return log


def _lines(log: AuditLog) -> list[str]:
    return log.path.read_text().splitlines(keepends=True)


def test_chain_verifies_and_redacts(tmp_path: Path) -> None:
    log = _log(tmp_path)
    assert log.verify() == {"ok": True, "entries": 5}
    text = log.path.read_text()
    assert "hunter2" not in text and "t0k" not in text
    entry = log.entries(1)[0]
    assert entry["seq"] == 5 and entry["arguments"]["password"] == "[redacted]" and entry["arguments"]["confirm"]
    assert set(entry) >= {"seq", "time", "actor", "scopes", "action", "target", "arguments", "result",
                          "prev_hash", "hash"}
    assert log.path.stat().st_mode & 0o777 == 0o600


def test_edit_is_detected(tmp_path: Path) -> None:
    log = _log(tmp_path)
    lines = _lines(log)
    lines[1] = lines[1].replace('"actor":"alice"', '"actor":"bob"')
    log.path.write_text("".join(lines))
    assert log.verify() == {"ok": False, "entries": 5, "first_bad": 2,
                            "reason": "the entry's content does not match its hash (edited)"}


def test_edit_with_recomputed_hashes_is_detected_by_the_head(tmp_path: Path) -> None:
    log = _log(tmp_path)
    entries = [json.loads(line) for line in _lines(log)]
    entries[2]["target"] = "something-else"
    prev = entries[1]["hash"]
    for e in entries[2:]:  # an attacker who rewrites the rest of the chain consistently
        e["prev_hash"] = prev
        e["hash"] = prev = entry_hash(e)
    log.path.write_text("".join(json.dumps(e, separators=(",", ":"), sort_keys=True) + "\n" for e in entries))
    result = log.verify()
    assert not result["ok"] and "head file" in result["reason"]


def test_deletion_insertion_and_reorder_are_detected(tmp_path: Path) -> None:
    log = _log(tmp_path)
    original = _lines(log)
    log.path.write_text("".join(original[:2] + original[3:]))
    assert log.verify()["first_bad"] == 3  # deleted in the middle
    log.path.write_text("".join([original[0], original[2], original[1], *original[3:]]))
    assert log.verify()["first_bad"] == 2  # reordered
    log.path.write_text("".join([*original[:2], original[1], *original[2:]]))
    assert log.verify()["first_bad"] == 3  # duplicated / inserted
    log.path.write_text("".join(original))
    assert log.verify()["ok"]


def test_truncated_tail_is_detected(tmp_path: Path) -> None:
    log = _log(tmp_path)
    original = _lines(log)
    log.path.write_text("".join(original[:-1]))  # the last entry dropped: the chain itself is intact
    result = log.verify()
    assert result == {"ok": False, "entries": 4, "first_bad": 5,
                      "reason": "the log ends at entry 4 but the head file records entry 5 (truncated or replaced)"}
    log.path.write_text("")
    assert not log.verify()["ok"]


def test_interrupted_append_is_completed(tmp_path: Path) -> None:
    log = _log(tmp_path, 3)
    head = log.head_path.read_text()
    log.append(actor="alice", scopes=[], action="a", target="t")
    log.head_path.write_text(head)  # a crash after the log's fsync, before the head was replaced
    log.append(actor="alice", scopes=[], action="b", target="t")
    assert log.verify() == {"ok": True, "entries": 5}


def test_concurrent_appends_keep_the_chain(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "a.jsonl")
    threads = [threading.Thread(target=lambda i=i: [log.append(actor=f"t{i}", scopes=[], action="x", target="y")
                                                    for _ in range(20)]) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert log.verify() == {"ok": True, "entries": 80}


def test_privileged_operations_are_audited_also_when_refused(api: ApiServer) -> None:
    before = len(api.ctx.audit.entries())
    env = api.add_env(tier="production")
    try:
        refused = api.request("DELETE", f"/api/v1/environments/{env}", role="developer")
        assert refused.status_code == 409 and refused.json()["error"] == "DESTROY_NEEDS_CONFIRMATION"
        no_scope = api.request("POST", f"/api/v1/environments/{env}/exec", role="tester",
                               json={"command": ["id"]})
        assert no_scope.status_code == 403
        made = api.request("POST", "/api/v1/tokens",  # null scopes, as the CLI sends them
                           json={"subject": "ci-bot", "scopes": None, "role": "tester", "ttl_s": 600})
        assert made.status_code == 201
    finally:
        api.remove_env(env)
    events = api.request("GET", "/api/v1/audit?limit=1000", role="admin").json()["events"][before:]
    summary = [(e["action"], e["target"], str(e["result"])) for e in events]
    assert ("env.destroy", env, "refused:DESTROY_NEEDS_CONFIRMATION") in summary
    assert any(a == "env.exec" and r.startswith("refused:SCOPE_REQUIRED") for a, _t, r in summary)
    token_event = next(e for e in events if e["action"] == "token.create")
    assert token_event["actor"] == "tester@example.com" and token_event["target"] == "ci-bot"
    assert made.json()["token"] not in json.dumps(events)
    check = api.request("GET", "/api/v1/audit/verify", role="admin").json()
    assert check["ok"] is True and check["entries"] >= len(events)
