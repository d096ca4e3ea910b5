"""What an open/close event must carry, per provider's payload shape: its signed time and head commit."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from reconciler.api.webhooks import (
    WebhookError,
    branches_of,
    changes_request_state,
    check_age,
    json_depth,
    request_head,
    request_time,
)

SHA = "a" * 40
T = datetime(2026, 12, 7, 5, 0, 0, tzinfo=UTC).timestamp()


@pytest.mark.parametrize(("provider", "event", "doc"), [
    ("github", "pull_request", {"action": "closed", "number": 7,
                                "pull_request": {"updated_at": "2026-12-07T05:00:00Z", "head": {"sha": SHA}}}),
    ("gitea", "pull_request", {"action": "reopened", "number": 7,
                               "pull_request": {"updated_at": "2026-12-07T06:00:00+01:00", "head": {"sha": SHA}}}),
    ("gitlab", "merge_request", {"object_kind": "merge_request", "object_attributes": {
        "iid": 7, "action": "merge", "updated_at": "2026-12-07 05:00:00 UTC", "last_commit": {"id": SHA}}}),
])
def test_each_provider_gives_time_and_head_of_an_open_or_close(provider: str, event: str, doc: dict) -> None:
    about = branches_of(provider, event, doc)
    assert about is not None and changes_request_state(*about)
    when, pointer = request_time(provider, event, doc)
    assert when == T and pointer.endswith("/updated_at")
    assert request_head(provider, event, doc) == SHA


def test_the_window_holds_both_ways() -> None:
    check_age(T, "/pull_request/updated_at", T + 299, 300)
    check_age(T, "/pull_request/updated_at", T - 299, 300)
    for now in (T + 301, T - 301):
        with pytest.raises(WebhookError) as err:
            check_age(T, "/pull_request/updated_at", now, 300)
        assert err.value.code == "WEBHOOK_TOO_OLD" and err.value.details["pointer"] == "/pull_request/updated_at"


def test_no_state_change_needs_no_time() -> None:
    about = branches_of("github", "pull_request", {"action": "synchronize", "number": 7})
    assert about == (("pull/7",), "synchronize") and not changes_request_state(*about)
    assert branches_of("github", "push", {"ref": "refs/heads/main"}) == (("main",), None)


@pytest.mark.parametrize(("body", "depth"), [
    (b"{}", 1), (b'{"a": [1, {"b": 2}]}', 3), (b'{"a": "[[[{{{"}', 1), (b'{"a": "\\"[[["}', 1),
    (b'"\\\\"[[', 2), (b"[" * 1000, 1000), (b'"unterminated [[[', 0),
])
def test_depth_scan(body: bytes, depth: int) -> None:
    assert json_depth(body) == depth
    assert json_depth(body, stop_above=1) == min(depth, 2)
