"""Webhooks over real HTTP with real signatures, against a daemon polling a real git remote.

The apply step is replaced by a recorder (the daemon's applier seam): these tests are about what
reaches the work queue and when; the real apply runs in test_end_to_end.py.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from reconciler.controller.planning import PlanOutcome, Project
from tests.daemon.conftest import DaemonFactory, push_branch, serve_api, unique_branch
from tests.daemon.gitserve import github_pr, github_push, sign_github, wait_for

SECRET = b"s3cret-for-tests"


class RecordingApplier:
    """Records each plan handed to apply; reports success without touching the host."""

    def __init__(self) -> None:
        self.outcomes: list[PlanOutcome] = []
        self.lock = threading.Lock()

    def factory(self, _project: Project) -> RecordingApplier:
        return self

    def apply(self, outcome: PlanOutcome) -> Any:
        with self.lock:
            self.outcomes.append(outcome)
        return type("Report", (), {"environments": [], "ok": True})()

    def commits_for(self, branch: str) -> list[str]:
        with self.lock:
            return [a.commit or "" for o in self.outcomes for a in o.plan.actions if a.branch == branch]


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    path = tmp_path / "webhook.secret"
    path.write_bytes(SECRET + b"\n")
    return path


@pytest.fixture
def recorder() -> RecordingApplier:
    return RecordingApplier()


@pytest.fixture
def api(remote: dict[str, Any], make_daemon: DaemonFactory, recorder: RecordingApplier,
        secret_file: Path) -> Iterator[tuple[str, Any]]:
    # An hour between polls: anything that happens within the test was caused by a webhook.
    daemon = make_daemon(remote["url"], None, poll_interval=3600, sweep_interval=3600,
                         applier_factory=recorder.factory)
    with serve_api(daemon, secret_file, max_payload=64 * 1024) as base:
        wait_for(lambda: httpx.get(f"{base}/readyz").status_code == 200, 30, "ready")
        yield base, daemon


def post(base: str, provider: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(f"{base}/webhooks/{provider}", content=body,
                      headers={"Content-Type": "application/json", **headers})


def gh(event: str, body: bytes, delivery: str, secret: bytes = SECRET) -> dict[str, str]:
    return {"X-GitHub-Event": event, "X-GitHub-Delivery": delivery, "X-Hub-Signature-256": sign_github(secret, body)}


def assert_error(resp: httpx.Response, status: int, code: str) -> None:
    assert resp.status_code == status, resp.text
    doc = resp.json()
    assert doc["error"] == code and doc["message"] and doc["remediation"] and doc["docs"].endswith(code)


def test_every_rejected_delivery(api: tuple[str, Any], remote: dict[str, Any]) -> None:
    base, daemon = api
    polls = daemon.polls
    body = github_push("develop")
    # bad, missing, or other-secret signatures: 401, for each provider's scheme
    assert_error(post(base, "github", body, gh("push", body, "d1", secret=b"wrong")), 401, "WEBHOOK_BAD_SIGNATURE")
    assert_error(post(base, "github", body, {"X-GitHub-Event": "push"}), 401, "WEBHOOK_BAD_SIGNATURE")
    tampered = body.replace(b"develop", b"main")
    assert_error(post(base, "github", tampered, gh("push", body, "d2")), 401, "WEBHOOK_BAD_SIGNATURE")
    assert_error(post(base, "gitea", body, {"X-Gitea-Event": "push", "X-Gitea-Signature": "00" * 32}), 401,
                 "WEBHOOK_BAD_SIGNATURE")
    assert_error(post(base, "gitlab", b'{"object_kind": "push"}', {"X-Gitlab-Token": "nope"}), 401,
                 "WEBHOOK_BAD_SIGNATURE")
    # over the payload limit: declared, and streamed without a Content-Length
    big = b'{"ref": "refs/heads/x", "pad": "' + b"x" * 70_000 + b'"}'
    assert_error(post(base, "github", big, gh("push", big, "d3")), 413, "WEBHOOK_TOO_LARGE")
    chunked = httpx.post(f"{base}/webhooks/github", content=iter([big[:40_000], big[40_000:]]),
                         headers=gh("push", big, "d4"))
    assert "content-length" not in {k.lower() for k in chunked.request.headers}
    assert_error(chunked, 413, "WEBHOOK_TOO_LARGE")
    # correctly signed but malformed or of an unknown shape: 400
    for bad in (b"{not json", b"[1, 2]", b"\xff\xfe"):
        assert_error(post(base, "github", bad, gh("push", bad, "d5")), 400, "WEBHOOK_MALFORMED")
    no_ref = b'{"after": "abc"}'
    assert_error(post(base, "github", no_ref, gh("push", no_ref, "d6")), 400, "WEBHOOK_UNKNOWN_SHAPE")
    no_number = b'{"action": "opened"}'
    assert_error(post(base, "github", no_number, gh("pull_request", no_number, "d7")), 400, "WEBHOOK_UNKNOWN_SHAPE")
    assert_error(post(base, "github", body, {k: v for k, v in gh("push", body, "d8").items()
                                             if k != "X-GitHub-Event"}), 400, "WEBHOOK_UNKNOWN_SHAPE")
    assert_error(post(base, "bitbucket", body, {}), 404, "NOT_FOUND")
    assert_error(httpx.get(f"{base}/webhooks/github"), 405, "METHOD_NOT_ALLOWED")
    # none of these woke the poller
    assert daemon.polls == polls
    # events that are no hint are acknowledged and ignored; ping answers pong
    issue = b'{"action": "opened", "issue": {}}'
    assert post(base, "github", issue, gh("issues", issue, "d9")).json()["status"] == "ignored"
    tag = b'{"ref": "refs/tags/v1"}'
    assert post(base, "github", tag, gh("push", tag, "d10")).json()["status"] == "ignored"
    ping = b'{"zen": "hi"}'
    assert post(base, "github", ping, gh("ping", ping, "d11")).json()["status"] == "pong"
    assert daemon.polls == polls
    metrics = httpx.get(f"{base}/metrics").text
    assert 'odooops_webhook_deliveries_total{outcome="bad_signature",provider="github"} 3.0' in metrics
    assert 'odooops_webhook_deliveries_total{outcome="too_large",provider="github"} 2.0' in metrics
    assert 'odooops_webhook_deliveries_total{outcome="malformed",provider="github"} 6.0' in metrics


def test_no_secret_refuses_every_webhook(remote: dict[str, Any], make_daemon: DaemonFactory,
                                         recorder: RecordingApplier) -> None:
    daemon = make_daemon(remote["url"], None, poll_interval=3600, start=False, applier_factory=recorder.factory)
    with serve_api(daemon, None) as base:
        # not ready before the first poll; alive and metrics regardless
        assert_error(httpx.get(f"{base}/readyz"), 503, "NOT_READY")
        body = github_push("develop")
        for provider, headers in (("github", gh("push", body, "x")),
                                  ("gitlab", {"X-Gitlab-Token": SECRET.decode(), "X-Gitlab-Event": "Push Hook"}),
                                  ("gitea", {"X-Gitea-Event": "push", "X-Gitea-Signature": "ab"})):
            assert_error(post(base, provider, body, headers), 403, "WEBHOOKS_DISABLED")
        daemon.start()
        wait_for(lambda: httpx.get(f"{base}/readyz").status_code == 200, 30, "ready")
        assert httpx.get(f"{base}/healthz").json() == {"status": "ok"}
        assert "odooops_queue_depth" in httpx.get(f"{base}/metrics").text


def test_valid_hints_reconcile_at_once_and_duplicates_are_ignored(api: tuple[str, Any],
                                                                  remote: dict[str, Any],
                                                                  recorder: RecordingApplier) -> None:
    base, _daemon = api
    work = remote["work"]
    # GitHub push
    b1 = unique_branch()
    c1 = push_branch(work, b1)
    body = github_push(b1, c1)
    resp = post(base, "github", body, gh("push", body, "gh-1"))
    assert resp.status_code == 202 and resp.json()["branches"] == [b1]
    wait_for(lambda: c1 in recorder.commits_for(b1), 30, "apply of the pushed branch")
    # the same delivery again: acknowledged, not processed
    again = post(base, "github", body, gh("push", body, "gh-1"))
    assert again.status_code == 202 and again.json()["status"] == "duplicate"
    # GitLab push (token), Gitea push (bare hex HMAC), and a GitHub pull request
    b2, b3 = unique_branch(), unique_branch()
    c2, c3 = push_branch(work, b2), push_branch(work, b3, files={"notes.txt": "x\n"})
    gl = json.dumps({"object_kind": "push", "ref": f"refs/heads/{b2}", "after": c2}).encode()
    assert post(base, "gitlab", gl, {"X-Gitlab-Token": SECRET.decode(), "X-Gitlab-Event": "Push Hook",
                                     "X-Gitlab-Event-UUID": "gl-1"}).status_code == 202
    gt = json.dumps({"ref": f"refs/heads/{b3}", "after": c3}).encode()
    sig = hmac.new(SECRET, gt, hashlib.sha256).hexdigest()
    assert post(base, "gitea", gt, {"X-Gitea-Event": "push", "X-Gitea-Delivery": "gt-1",
                                    "X-Gitea-Signature": sig}).status_code == 202
    number = 700_000 + int(c3[:5], 16) % 99_999  # PR env names are global on the host
    pr_commit = push_branch(work, f"pr{number}", files={"pr.txt": "y\n"})
    from tests.daemon.gitserve import git

    git(work, "push", "-q", "origin", f"HEAD:refs/pull/{number}/head")
    pr = github_pr(number, "opened", pr_commit)
    assert post(base, "github", pr, gh("pull_request", pr, "gh-2")).json()["branches"] == [f"pull/{number}"]
    for branch, commit in ((b2, c2), (b3, c3), (f"pull/{number}", pr_commit)):
        wait_for(lambda b=branch, c=commit: c in recorder.commits_for(b), 30, f"apply of {branch}")
    text = httpx.get(f"{base}/metrics").text
    assert 'odooops_polls_total{result="changed",trigger="timer"} 1.0' in text  # only the start-up poll
    assert 'odooops_webhook_deliveries_total{outcome="duplicate",provider="github"} 1.0' in text
    assert "odooops_webhook_to_apply_seconds_count" in text
    status = httpx.get(f"{base}/status").json()
    assert status["ready"] and status["queue"]["max_concurrent"] == 10


class GatedApplier(RecordingApplier):
    """Holds every apply until its branch is released: shows what waits in the queue."""

    def __init__(self) -> None:
        super().__init__()
        self.gates: dict[str, threading.Event] = {}
        self.active = self.max_active = 0

    def gate(self, branch: str) -> threading.Event:
        with self.lock:
            return self.gates.setdefault(branch, threading.Event())

    def apply(self, outcome: PlanOutcome) -> Any:
        [branch] = {a.branch for a in outcome.plan.actions}
        with self.lock:
            self.active += 1
            self.max_active = max(self.max_active, self.active)
        try:
            assert self.gate(branch).wait(60)
            return super().apply(outcome)
        finally:
            with self.lock:
                self.active -= 1


def test_concurrency_limit_queues_the_rest_visibly(remote: dict[str, Any], make_daemon: DaemonFactory) -> None:
    gated = GatedApplier()
    daemon = make_daemon(remote["url"], None, poll_interval=3600, max_concurrent=2, applier_factory=gated.factory)
    with serve_api(daemon, None) as base:
        wait_for(daemon.is_ready, 30, "first poll")
        branches = [unique_branch() for _ in range(4)]
        for b in branches:
            push_branch(remote["work"], b)
        daemon.poll_once()  # the poller thread sleeps for an hour; poll from here
        wait_for(lambda: gated.active == 2, 30, "two applies running")
        status = httpx.get(f"{base}/status").json()["queue"]
        assert len(status["running"]) == 2 and len(status["pending"]) == 2
        assert "odooops_queue_depth 2.0" in httpx.get(f"{base}/metrics").text
        for b in branches:
            gated.gate(b).set()
        wait_for(daemon.queue.idle, 30, "queue drained")
    assert gated.max_active == 2
    assert sorted({a.branch for o in gated.outcomes for a in o.plan.actions}) == sorted(branches)


def test_closed_request_is_planned_gone_though_its_ref_stays(api: tuple[str, Any], remote: dict[str, Any],
                                                             recorder: RecordingApplier) -> None:
    base, daemon = api
    from tests.daemon.gitserve import git

    number = 800_000 + int(unique_branch("")[1:6], 16) % 99_999
    env, branch = f"pr-{number}", f"pull/{number}"
    head = push_branch(remote["work"], f"topic{number}", files={"x.txt": "x\n"})
    git(remote["work"], "push", "-q", "origin", f"HEAD:refs/pull/{number}/head")

    def send(action: str, delivery: str, updated_at: float | None = None) -> None:
        body = github_pr(number, action, head, updated_at)
        assert post(base, "github", body, gh("pull_request", body, delivery)).json()["status"] == "accepted"

    def desired() -> list[str]:
        return httpx.get(f"{base}/status").json()["desired"]

    send("opened", f"c{number}-1")
    wait_for(lambda: env in desired(), 30, "preview wanted")
    send("closed", f"c{number}-2")
    wait_for(lambda: env not in desired(), 30, "preview no longer wanted")
    assert daemon.closed.all()[branch]["action"] == "closed"  # durable: a restart keeps it
    send("reopened", f"c{number}-3")
    wait_for(lambda: env in desired(), 30, "wanted again")
    send("closed", f"c{number}-4", time.time() + 1)  # a later close: another updated_at, another body
    wait_for(lambda: env not in desired(), 30, "closed again")
    git(remote["work"], "push", "-q", "origin", f":refs/pull/{number}/head")
    daemon.poll_once()
    assert branch not in daemon.closed.all()  # the ref is gone: nothing left to remember
