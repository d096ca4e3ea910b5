"""The audit trail: keyed (HMAC) chain, anchors in Git, legacy logs; any edit, deletion, reorder or
truncation is detected, also when the attacker recomputes the chain and its head."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from reconciler.api.audit import KEYED_MARKER, AuditKey, AuditLog, entry_hash
from reconciler.errors import OdooOpsError
from reconciler.sources.audit_anchors import ANCHOR_REF, GitAnchors
from tests.api.conftest import ApiServer

ROOT = Path(__file__).resolve().parents[2]


def _key(tmp_path: Path, name: str = "audit.key") -> AuditKey:
    return AuditKey.from_file(tmp_path / "keys" / name, create=True)


def _fill(log: AuditLog, n: int, start: int = 0) -> None:
    for i in range(start, start + n):
        log.append(actor="alice", scopes=["admin"], action="env.destroy", target=f"env-{i}",
                   arguments={"confirm": True, "password": "hunter2", "nested": {"token": "t0k"}}, result="ok")


def _log(tmp_path: Path, n: int = 5, key: AuditKey | None = None, anchors: GitAnchors | None = None) -> AuditLog:
    log = AuditLog(tmp_path / "audit" / "audit.jsonl", key, anchors)
    _fill(log, n)
    return log


def _lines(log: AuditLog) -> list[str]:
    return log.path.read_text().splitlines(keepends=True)


def _rewrite_unkeyed(log: AuditLog, entries: list[dict[str, Any]], *, strip_key: bool) -> None:
    """What an attacker without the key does: renumber, recompute every hash with SHA-256, fix the head."""
    prev = "0" * 64
    for seq, e in enumerate(entries, start=1):
        if strip_key:
            e.pop("key_id", None)
        e["seq"], e["prev_hash"] = seq, prev
        e["hash"] = prev = entry_hash(e)
    log.path.write_text("".join(json.dumps(e, separators=(",", ":"), sort_keys=True) + "\n" for e in entries))
    log.head_path.write_text(json.dumps({"seq": len(entries), "hash": prev}))


@pytest.fixture()
def anchors(tmp_path: Path) -> GitAnchors:
    remote = tmp_path / "project.git"
    subprocess.run(["git", "init", "-q", "--bare", str(remote)], check=True)
    return GitAnchors(str(remote), tmp_path / "scratch" / "anchors.git")


def test_keyed_chain_verifies_and_redacts(tmp_path: Path) -> None:
    key = _key(tmp_path)
    log = _log(tmp_path, key=key)
    result = log.verify()
    assert result["ok"] and result["status"] == "ok" and result["entries"] == 5 and result["keyed_entries"] == 5
    text = log.path.read_text()
    assert "hunter2" not in text and "t0k" not in text
    entry = log.entries(1)[0]
    assert entry["seq"] == 5 and entry["arguments"]["password"] == "[redacted]" and entry["arguments"]["confirm"]
    assert entry["key_id"] == key.id and entry["hash"] != entry_hash(entry)  # an HMAC, not the plain digest
    assert set(entry) >= {"seq", "time", "actor", "scopes", "action", "target", "arguments", "result",
                          "prev_hash", "hash"}
    assert log.path.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "keys" / "audit.key").stat().st_mode & 0o777 == 0o600
    assert AuditKey.from_file(tmp_path / "keys" / "audit.key", create=True) == key  # created once, then read


def test_key_inside_the_state_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(OdooOpsError) as err:
        AuditKey.from_file(tmp_path / "state" / "audit.key", create=True, outside=[tmp_path / "state"])
    assert err.value.code == "AUDIT_KEY_INSIDE_PROTECTED_DIR" and "ODOOOPS_AUDIT_KEY_FILE" in err.value.remediation
    assert not (tmp_path / "state" / "audit.key").exists()


@pytest.mark.parametrize("strip_key", [False, True])
def test_deleted_entry_with_recomputed_unkeyed_chain_fails(tmp_path: Path, strip_key: bool) -> None:
    """The probe's attack: delete an entry, recompute the chain and its head. Unkeyed SHA-256 said ok."""
    log = _log(tmp_path, key=_key(tmp_path))
    entries = [json.loads(line) for line in _lines(log)]
    del entries[2]
    _rewrite_unkeyed(log, entries, strip_key=strip_key)
    result = log.verify()
    assert not result["ok"], result
    if strip_key:  # the whole log now looks unkeyed: no keyed entry proves anything
        assert result["status"] == "unverifiable" and "no keyed one" in result["reason"]
    else:
        assert result["status"] == "tampered" and result["first_bad"] == 1 and "HMAC" in result["reason"]
        assert "entry 1 of 4" in result["message"]


def test_edits_deletions_and_reorders_are_named(tmp_path: Path) -> None:
    log = _log(tmp_path, key=_key(tmp_path))
    original = _lines(log)
    lines = list(original)
    lines[1] = lines[1].replace('"actor":"alice"', '"actor":"bob"')
    log.path.write_text("".join(lines))
    result = log.verify()
    assert (result["status"], result["first_bad"]) == ("tampered", 2) and "HMAC" in result["reason"]
    log.path.write_text("".join(original[:2] + original[3:]))
    assert log.verify()["first_bad"] == 3  # deleted in the middle
    log.path.write_text("".join([original[0], original[2], original[1], *original[3:]]))
    assert log.verify()["first_bad"] == 2  # reordered
    log.path.write_text("".join([*original[:2], original[1], *original[2:]]))
    assert log.verify()["first_bad"] == 3  # duplicated / inserted
    log.path.write_text("".join(original))
    assert log.verify()["ok"]


def test_downgrade_after_keyed_entries_is_tampering(tmp_path: Path) -> None:
    """Keyed entries kept, the ones after them rewritten unkeyed (the attacker has no key)."""
    log = _log(tmp_path, key=_key(tmp_path))
    entries = [json.loads(line) for line in _lines(log)]
    prev = entries[2]["hash"]
    for e in entries[3:]:
        e.pop("key_id")
        e["target"] = "rewritten"
        e["prev_hash"] = prev
        e["hash"] = prev = entry_hash(e)
    log.path.write_text("".join(json.dumps(e, separators=(",", ":"), sort_keys=True) + "\n" for e in entries))
    log.head_path.write_text(json.dumps({"seq": 5, "hash": prev}))
    result = log.verify()
    assert (result["status"], result["first_bad"]) == ("tampered", 4)
    assert "unkeyed entry after keyed" in result["reason"]


def test_truncating_behind_the_anchor_fails(tmp_path: Path, anchors: GitAnchors) -> None:
    log = _log(tmp_path, 5, key=_key(tmp_path), anchors=anchors)
    anchor = log.anchor()
    assert anchor is not None and (anchor.seq, anchor.hash) == (5, log.entries(1)[0]["hash"])
    _fill(log, 2, start=5)
    assert log.verify()["ok"] and log.verify()["anchor"]["seq"] == 5
    # Cut back to 3 entries and fix the head file: the chain itself is intact, and the key is not needed.
    lines = _lines(log)
    log.path.write_text("".join(lines[:3]))
    log.head_path.write_text(json.dumps({"seq": 3, "hash": json.loads(lines[2])["hash"]}))
    result = log.verify()
    assert result["status"] == "tampered" and result["first_bad"] == 4, result
    assert "anchor" in result["reason"] and "records entry 5" in result["reason"] and ANCHOR_REF in result["reason"]
    # The same log without the anchor check (what the head file alone can tell): it looks fine.
    assert log.verify(check_anchor=False)["ok"]
    # Anchoring a log shorter than its anchor is refused: a truncated log is never blessed.
    with pytest.raises(OdooOpsError) as err:
        log.anchor()
    assert err.value.code == "AUDIT_NOT_ANCHORED"


def test_anchors_are_a_fast_forward_history_in_the_repository(tmp_path: Path, anchors: GitAnchors) -> None:
    log = _log(tmp_path, 2, key=_key(tmp_path), anchors=anchors)
    first = log.anchor()
    assert log.anchor() == first  # nothing new: no new anchor commit
    _fill(log, 3, start=2)
    second = log.anchor()
    assert first is not None and second is not None and (first.seq, second.seq) == (2, 5)
    history = subprocess.run(["git", "--git-dir", anchors.remote_url, "log", "--format=%s", ANCHOR_REF],
                             capture_output=True, text=True, check=True).stdout.splitlines()
    assert history == ["odooops: audit anchor at entry 5", "odooops: audit anchor at entry 2"]
    shown = subprocess.run(["git", "--git-dir", anchors.remote_url, "show", f"{ANCHOR_REF}:anchor.json"],
                           capture_output=True, text=True, check=True).stdout
    assert json.loads(shown)["hash"] == second.hash and "alice" not in shown


def test_replaced_log_with_the_right_length_differs_from_the_anchor(tmp_path: Path, anchors: GitAnchors) -> None:
    """Someone holding the key rebuilds the log from scratch: the HMACs verify, the anchored entry differs."""
    key = _key(tmp_path)
    log = _log(tmp_path, 3, key=key, anchors=anchors)
    log.anchor()
    log.path.unlink()
    log.head_path.unlink()
    forged = AuditLog(log.path, key, anchors)
    for i in range(3):
        forged.append(actor="mallory", scopes=[], action="nothing", target=f"t{i}")
    result = forged.verify()
    assert (result["status"], result["first_bad"]) == ("tampered", 3) and "not the one anchored" in result["reason"]


def test_wrong_or_missing_key_cannot_verify(tmp_path: Path) -> None:
    log = _log(tmp_path, 3, key=_key(tmp_path))
    wrong = AuditLog(log.path, _key(tmp_path, "other.key")).verify()
    assert (wrong["status"], wrong["first_bad"]) == ("unverifiable", 1)
    assert "wrong key" in wrong["reason"] and _key(tmp_path).id in wrong["reason"]
    none = AuditLog(log.path).verify()
    assert none["status"] == "unverifiable" and "no audit key" in none["reason"]
    with pytest.raises(OdooOpsError) as err:  # an unkeyed writer must not continue a keyed log
        AuditLog(log.path).append(actor="x", scopes=[], action="a", target="t")
    assert err.value.code == "AUDIT_KEY_MISSING"


def test_legacy_log_is_continued_keyed_after_a_marker(tmp_path: Path) -> None:
    legacy = _log(tmp_path, 3)  # written by an earlier version: unkeyed SHA-256
    assert all("key_id" not in e for e in legacy.entries())
    key = _key(tmp_path)
    keyed = AuditLog(legacy.path, key)
    assert keyed.verify()["status"] == "unverifiable"  # nothing keyed yet: only a keyed server continues it
    assert keyed.seal() and not keyed.seal()
    _fill(keyed, 2, start=3)
    entries = keyed.entries()
    assert [e["action"] for e in entries][3] == KEYED_MARKER and entries[3]["arguments"] == {"legacy_entries": 3}
    result = keyed.verify()
    assert result["ok"] and (result["legacy_entries"], result["keyed_entries"]) == (3, 3), result
    # A legacy entry rewritten (and the legacy chain recomputed) no longer matches the marker's keyed prev_hash.
    lines = _lines(keyed)
    first = [json.loads(line) for line in lines[:3]]
    first[1]["target"] = "rewritten"
    prev = first[0]["hash"]
    for e in first[1:]:
        e["prev_hash"] = prev
        e["hash"] = prev = entry_hash(e)
    keyed.path.write_text("".join(json.dumps(e, separators=(",", ":"), sort_keys=True) + "\n" for e in first)
                          + "".join(lines[3:]))
    result = keyed.verify()
    assert (result["status"], result["first_bad"]) == ("tampered", 4), result


def test_truncated_tail_is_detected_by_the_head(tmp_path: Path) -> None:
    log = _log(tmp_path, key=_key(tmp_path))
    original = _lines(log)
    log.path.write_text("".join(original[:-1]))  # the last entry dropped: the chain itself is intact
    result = log.verify()
    assert (result["status"], result["entries"], result["first_bad"]) == ("tampered", 4, 5)
    assert result["reason"] == "the log ends at entry 4 but the head file records entry 5 (truncated or replaced)"
    log.path.write_text("")
    assert not log.verify()["ok"]


def test_interrupted_append_is_completed(tmp_path: Path) -> None:
    log = _log(tmp_path, 3, key=_key(tmp_path))
    head = log.head_path.read_text()
    log.append(actor="alice", scopes=[], action="a", target="t")
    log.head_path.write_text(head)  # a crash after the log's fsync, before the head was replaced
    log.append(actor="alice", scopes=[], action="b", target="t")
    assert log.verify()["ok"] and log.verify()["entries"] == 5


def test_concurrent_appends_keep_the_chain(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "a.jsonl", _key(tmp_path))
    threads = [threading.Thread(target=lambda i=i: [log.append(actor=f"t{i}", scopes=[], action="x", target="y")
                                                    for _ in range(20)]) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert log.verify()["ok"] and log.verify()["entries"] == 80


def _cli_verify(log: AuditLog, key_file: Path, repo: str | None = None) -> subprocess.CompletedProcess[str]:
    args = [sys.executable, "-m", "reconciler", "audit", "verify", "--log", str(log.path), "--key-file", str(key_file)]
    return subprocess.run(args + (["--repo", repo] if repo else []), capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "ODOOOPS_SERVER": "http://127.0.0.1:9"}, check=False, timeout=120)


def test_cli_exit_codes(tmp_path: Path, anchors: GitAnchors) -> None:
    key_file = tmp_path / "keys" / "audit.key"
    log = _log(tmp_path, 4, key=_key(tmp_path), anchors=anchors)
    log.anchor()
    ok = _cli_verify(log, key_file, anchors.remote_url)
    assert ok.returncode == 0 and "intact: 4 entries" in ok.stdout and "anchored at entry 4" in ok.stdout, ok
    wrong = _cli_verify(log, tmp_path / "keys" / "x.key")
    assert wrong.returncode == 2 and "CANNOT BE VERIFIED" in wrong.stdout and "does not exist" in wrong.stdout
    _key(tmp_path, "other.key")
    wrong = _cli_verify(log, tmp_path / "keys" / "other.key")
    assert wrong.returncode == 2 and "wrong key" in wrong.stdout, wrong
    lines = _lines(log)
    log.path.write_text("".join(lines[:2]))
    log.head_path.write_text(json.dumps({"seq": 2, "hash": json.loads(lines[1])["hash"]}))
    cut = _cli_verify(log, key_file, anchors.remote_url)
    assert cut.returncode == 1 and "TAMPERED: entry 3" in cut.stdout and "truncated" in cut.stdout, cut


def test_privileged_operations_are_audited_also_when_refused(api: ApiServer) -> None:
    before = len(api.ctx.audit.entries())
    env = api.add_env(tier="production")
    try:
        refused = api.request("DELETE", f"/api/v1/environments/{env}", role="admin")
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
    assert all(e.get("key_id") for e in events)  # the server's log is keyed
    check = api.request("GET", "/api/v1/audit/verify", role="admin").json()
    assert check["ok"] is True and check["status"] == "ok" and check["entries"] >= len(events)
