"""Replayed, stale and hostile webhook deliveries, over real HTTP with real signatures, against a
daemon polling a real git remote on loopback: a replay (same id, or the same signed body under a new
id, before or after a restart) starts nothing; a pull request's open/close takes effect only when the
repository's refs/pull/N/head agrees; bad branch names and deeply nested bodies get a 400."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from reconciler.controller.daemon import Daemon
from reconciler.core.hints import Hint
from tests.daemon.conftest import DaemonFactory, push_branch, serve_api, unique_branch
from tests.daemon.gitserve import git, github_pr, github_push, wait_for
from tests.daemon.test_webhooks import SECRET, RecordingApplier, assert_error, gh, post


class HintLog:
    """The daemon as the API sees it, with every hint it passes on written down (create_app's seam)."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.hints: list[Hint] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.daemon, name)

    def hint(self, hint: Hint) -> None:
        self.hints.append(hint)
        self.daemon.hint(hint)


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    path = tmp_path / "webhook.secret"
    path.write_bytes(SECRET + b"\n")
    return path


class Server:
    """A daemon (no polls but the first and those hints cause; no apply) behind the HTTP API;
    restart() stops both and starts new ones on the same state directory, as a server restart does."""

    def __init__(self, remote: dict[str, Any], make_daemon: DaemonFactory, secret_file: Path) -> None:
        self.remote, self.make_daemon, self.secret_file = remote, make_daemon, secret_file
        self.recorder = RecordingApplier()
        self.base = ""
        self._ctx: Any = None
        self.start()

    def start(self) -> None:
        # request_event_wait=0: an event whose head the mirror does not have is dropped at the first poll
        self.daemon = self.make_daemon(self.remote["url"], None, poll_interval=3600, sweep_interval=3600,
                                       request_event_wait=0.0, applier_factory=self.recorder.factory)
        self.log = HintLog(self.daemon)
        self._ctx = serve_api(self.log, self.secret_file, max_payload=64 * 1024)
        self.base = self._ctx.__enter__()
        wait_for(lambda: httpx.get(f"{self.base}/readyz").status_code == 200, 180, "ready")

    def stop(self) -> None:
        self._ctx.__exit__(None, None, None)
        self.daemon.stop(60)

    def restart(self) -> None:
        self.stop()
        self.start()

    def send(self, event: str, body: bytes, delivery: str) -> httpx.Response:
        return post(self.base, "github", body, gh(event, body, delivery))

    def settled(self) -> None:
        """Every open/close event taken so far has been confirmed or dropped by a poll."""
        wait_for(lambda: not self.daemon.request_events.all(), 180, "request events confirmed or dropped")

    def desired(self) -> list[str]:
        self.daemon.poll_once(resync=True)  # plan now, from this thread, whatever the poller does
        return list(self.daemon.status()["desired"])


@pytest.fixture
def server(remote: dict[str, Any], make_daemon: DaemonFactory, secret_file: Path) -> Iterator[Server]:
    srv = Server(remote, make_daemon, secret_file)
    yield srv
    srv.stop()


def pr_number() -> int:
    return 600_000 + int(unique_branch("")[:5], 16) % 99_999  # PR env names are global on the host


def open_request(remote: dict[str, Any], number: int, files: dict[str, str] | None = None,
                 start: str = "origin/base") -> str:
    """Push a topic branch and publish it as refs/pull/N/head, as GitHub does; returns the head commit."""
    head = push_branch(remote["work"], f"topic{number}", start, files=files or {"pr.txt": f"{number}\n"})
    git(remote["work"], "push", "-q", "-f", "origin", f"HEAD:refs/pull/{number}/head")
    return head


def test_replayed_push_is_acknowledged_and_starts_nothing_even_after_a_restart(
        server: Server, remote: dict[str, Any]) -> None:
    branch = unique_branch()
    commit = push_branch(remote["work"], branch)
    body = github_push(branch, commit)
    first = server.send("push", body, "r-1")
    assert first.status_code == 202 and first.json()["status"] == "accepted", first.text
    wait_for(lambda: commit in server.recorder.commits_for(branch), 180, "apply of the pushed branch")
    assert len(server.log.hints) == 1
    # the provider's redelivery (same id) and a captured body sent under a new id: acknowledged, ignored
    for delivery in ("r-1", "r-forged"):
        again = server.send("push", body, delivery)
        assert again.status_code == 202 and again.json() == {"status": "duplicate", "delivery": delivery}
    assert len(server.log.hints) == 1
    # the journal is on disk: a restarted server still knows both
    server.restart()
    for delivery in ("r-1", "r-after-restart"):
        again = server.send("push", body, delivery)
        assert again.status_code == 202 and again.json()["status"] == "duplicate", again.text
    assert server.log.hints == []
    metrics = httpx.get(f"{server.base}/metrics").text
    assert 'odooops_webhook_deliveries_total{outcome="duplicate",provider="github"} 2.0' in metrics
    # a new push is still taken
    fresh = github_push(branch, push_branch(remote["work"], branch, start="HEAD", files={"n.txt": "n\n"}))
    assert server.send("push", fresh, "r-2").json()["status"] == "accepted"


def test_a_delivery_id_reused_with_another_body_is_refused(server: Server, remote: dict[str, Any]) -> None:
    branch = unique_branch()
    commit = push_branch(remote["work"], branch)
    assert server.send("push", github_push(branch, commit), "same-id").status_code == 202
    other = github_push(branch, "1" * 40)
    resp = server.send("push", other, "same-id")
    assert_error(resp, 409, "WEBHOOK_DELIVERY_REUSED")
    assert resp.json()["delivery"] == "same-id"
    assert len(server.log.hints) == 1


def test_replayed_close_leaves_the_preview(server: Server, remote: dict[str, Any]) -> None:
    number = pr_number()
    env, branch = f"pr-{number}", f"pull/{number}"
    head = open_request(remote, number)
    assert server.send("pull_request", github_pr(number, "opened", head), f"{number}-open").status_code == 202
    server.settled()
    assert env in server.desired()
    closed = github_pr(number, "closed", head)
    assert server.send("pull_request", closed, f"{number}-close").json()["status"] == "accepted"
    server.settled()
    assert branch in server.daemon.closed.all() and env not in server.desired()
    reopened = github_pr(number, "reopened", head)
    assert server.send("pull_request", reopened, f"{number}-reopen").json()["status"] == "accepted"
    server.settled()
    assert branch not in server.daemon.closed.all() and env in server.desired()

    # the captured "closed" delivery, as it was and under a new id, now and after a restart
    hints = len(server.log.hints)
    assert server.send("pull_request", closed, f"{number}-close").json()["status"] == "duplicate"
    assert server.send("pull_request", closed, f"{number}-replay").json()["status"] == "duplicate"
    assert len(server.log.hints) == hints
    server.restart()
    assert server.send("pull_request", closed, f"{number}-replay-2").json()["status"] == "duplicate"
    assert server.log.hints == []
    assert branch not in server.daemon.closed.all() and env in server.desired()


def test_a_close_naming_a_head_the_request_no_longer_has_is_not_confirmed(
        server: Server, remote: dict[str, Any]) -> None:
    # a signed, fresh "closed" (a late delivery, or a replay of one never journaled here) naming a head
    # the request no longer has: the repository disagrees, so the preview stays
    number = pr_number()
    env, branch = f"pr-{number}", f"pull/{number}"
    head = open_request(remote, number)
    assert server.send("pull_request", github_pr(number, "opened", head), f"{number}-open").status_code == 202
    server.settled()
    assert env in server.desired()
    new_head = open_request(remote, number, files={"pr.txt": "two\n"}, start="HEAD")
    assert new_head != head
    stale = github_pr(number, "closed", head)
    assert server.send("pull_request", stale, f"{number}-stale").json()["status"] == "accepted"
    server.settled()
    assert branch not in server.daemon.closed.all() and env in server.desired()
    metrics = httpx.get(f"{server.base}/metrics").text
    assert 'odooops_webhook_deliveries_total{outcome="unconfirmed",provider="github"} 1.0' in metrics
    # the same event naming the head the request has now is taken
    assert server.send("pull_request", github_pr(number, "closed", new_head), f"{number}-close").status_code == 202
    server.settled()
    assert branch in server.daemon.closed.all() and env not in server.desired()


def test_reopen_of_a_request_whose_ref_is_gone_creates_nothing(server: Server, remote: dict[str, Any]) -> None:
    number = pr_number()
    env, branch = f"pr-{number}", f"pull/{number}"
    head = open_request(remote, number)
    assert server.send("pull_request", github_pr(number, "closed", head), f"{number}-c").status_code == 202
    server.settled()
    assert branch in server.daemon.closed.all() and env not in server.desired()
    git(remote["work"], "push", "-q", "origin", f":refs/pull/{number}/head")
    reopened = github_pr(number, "reopened", head, updated_at=time.time() + 1)
    assert server.send("pull_request", reopened, f"{number}-r").json()["status"] == "accepted"
    server.settled()
    assert env not in server.desired()


def test_open_and_close_events_outside_the_time_window_are_refused(server: Server, remote: dict[str, Any]) -> None:
    number = pr_number()
    head = open_request(remote, number)
    for when, delivery in ((time.time() - 3600, "old"), (time.time() + 3600, "future")):
        resp = server.send("pull_request", github_pr(number, "closed", head, updated_at=when), f"{number}-{delivery}")
        assert_error(resp, 400, "WEBHOOK_TOO_OLD")
        assert resp.json()["pointer"] == "/pull_request/updated_at"
    # without a timestamp or a head commit, an open/close cannot be bounded or confirmed
    for drop, pointer in (("updated_at", "/pull_request/updated_at"), ("head", "/pull_request/head/sha")):
        doc = json.loads(github_pr(number, "closed", head))
        del doc["pull_request"][drop]
        resp = server.send("pull_request", json.dumps(doc).encode(), f"{number}-no-{drop}")
        assert_error(resp, 400, "WEBHOOK_UNKNOWN_SHAPE")
        assert resp.json()["pointer"] == pointer
    assert server.log.hints == []
    # events that change no open/close state need neither (a synchronize is only a hint to fetch)
    sync = json.dumps({"action": "synchronize", "number": number, "pull_request": {"number": number}}).encode()
    assert server.send("pull_request", sync, f"{number}-sync").json()["status"] == "accepted"


def nested(depth: int) -> bytes:
    return b'{"ref": "refs/heads/x", "pad": ' + b"[" * (depth - 1) + b"]" * (depth - 1) + b"}"


def test_deeply_nested_bodies_get_a_400_never_a_500(server: Server) -> None:
    assert server.send("push", nested(64), "n-64").json()["status"] == "accepted"  # the limit itself is fine
    for depth in (65, 20_000):  # 20,000 levels: json.loads itself dies with RecursionError
        resp = server.send("push", nested(depth), f"n-{depth}")
        assert_error(resp, 400, "WEBHOOK_PAYLOAD_TOO_DEEP")
        assert resp.json()["max_depth"] == 64
    # brackets inside strings do not count; GitHub's form encoding is checked the same way
    in_string = json.dumps({"ref": "refs/heads/x", "pad": "[" * 5000}).encode()
    assert server.send("push", in_string, "n-str").json()["status"] == "accepted"
    form = b"payload=" + nested(5000).replace(b"[", b"%5B").replace(b"]", b"%5D").replace(b" ", b"+")
    resp = httpx.post(f"{server.base}/webhooks/github", content=form,
                      headers={**gh("push", form, "n-form"), "Content-Type": "application/x-www-form-urlencoded"})
    assert_error(resp, 400, "WEBHOOK_PAYLOAD_TOO_DEEP")
    metrics = httpx.get(f"{server.base}/metrics").text
    assert 'odooops_webhook_deliveries_total{outcome="too_deep",provider="github"} 3.0' in metrics


@pytest.mark.parametrize("ref", ["refs/heads/a..b", "refs/heads/-rf", "refs/heads/x y", "refs/heads/x.lock",
                                 "refs/heads/.hidden", "refs/heads/a\u0001b", "refs/heads/x:y", "refs/heads/x@{1}",
                                 "refs/heads/a//b", "refs/heads/x/", "refs/heads/" + "b" * 256])
def test_bad_branch_names_in_hints_get_a_400_naming_the_field(server: Server, ref: str) -> None:
    create = {"ref": ref.removeprefix("refs/heads/"), "ref_type": "branch"}
    for event, body in (("push", json.dumps({"ref": ref, "after": "0" * 40}).encode()),
                        ("create", json.dumps(create).encode())):
        resp = server.send(event, body, f"{event}-{abs(hash(ref))}")
        assert_error(resp, 400, "WEBHOOK_BAD_BRANCH")
        assert resp.json()["pointer"] == "/ref" and "check-ref-format" in resp.json()["remediation"]
    assert server.log.hints == []
