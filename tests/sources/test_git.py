"""GitSource against real repositories: local, file:// and git:// mirrors, fetches and errors."""

from __future__ import annotations

import http.server
import json
import re
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pygit2
import pytest

from reconciler.errors import OdooOpsError
from reconciler.sources import notes
from reconciler.sources.git import GitSource, is_url, mirror_name, redact_url

from ._gitutil import commit_file, free_port, git

SIG = pygit2.Signature("Tester", "tester@example.test", 1_700_000_000, 0)


def _heads_by_ref(source: GitSource) -> dict[str, tuple[str, str, str | None]]:
    return {h.ref: (h.kind, h.commit, h.config_blob) for h in source.heads()}


def test_local_path_heads(work_repo: Path, tmp_path: Path) -> None:
    git(work_repo, "checkout", "-q", "-b", "feature/no-config")
    git(work_repo, "rm", "-q", ".odooops.yaml")
    git(work_repo, "commit", "-q", "-m", "drop config")
    no_config = git(work_repo, "rev-parse", "HEAD")
    git(work_repo, "checkout", "-q", "main")
    git(work_repo, "update-ref", "refs/pull/7/head", "main")
    git(work_repo, "update-ref", "refs/merge-requests/12/head", "feature/no-config")
    git(work_repo, "update-ref", "refs/pull/oops/head", "main")  # not a PR number: ignored
    git(work_repo, "tag", "v1")  # tags are not heads

    source = GitSource(str(work_repo), tmp_path / "state")
    heads = source.heads()
    assert [h.ref for h in heads] == sorted(h.ref for h in heads)
    by_ref = {h.ref: h for h in heads}
    assert set(by_ref) == {
        "refs/heads/main", "refs/heads/feature/no-config", "refs/pull/7/head",
        "refs/merge-requests/12/head",
    }
    main = by_ref["refs/heads/main"]
    assert (main.kind, main.branch, main.number) == ("branch", "main", None)
    assert main.commit == git(work_repo, "rev-parse", "main")
    assert main.commit_time == int(git(work_repo, "log", "-1", "--format=%ct", "main"))
    assert main.config_blob == git(work_repo, "rev-parse", "main:.odooops.yaml")
    assert source.read_blob(main.config_blob) == b"version: 1\n"
    pr = by_ref["refs/pull/7/head"]
    assert (pr.kind, pr.branch, pr.number) == ("pull_request", "pull/7", 7)
    mr = by_ref["refs/merge-requests/12/head"]
    assert (mr.kind, mr.branch, mr.number, mr.commit) == (
        "merge_request", "merge-requests/12", 12, no_config)
    assert mr.config_blob is None
    assert by_ref["refs/heads/feature/no-config"].config_blob is None
    assert not source.is_mirror and not (tmp_path / "state").exists()


def test_config_that_is_a_directory_or_symlink_is_absent(work_repo: Path, tmp_path: Path) -> None:
    git(work_repo, "rm", "-q", ".odooops.yaml")
    commit_file(work_repo, ".odooops.yaml/inner", "x\n")
    git(work_repo, "checkout", "-q", "-b", "link")
    git(work_repo, "rm", "-q", "-r", ".odooops.yaml")
    (work_repo / "real.yaml").write_text("version: 1\n")
    (work_repo / ".odooops.yaml").symlink_to("real.yaml")
    git(work_repo, "add", "-A")
    git(work_repo, "commit", "-q", "-m", "symlink")
    heads = GitSource(str(work_repo), tmp_path / "s").heads()
    assert [h.config_blob for h in heads] == [None, None]


def test_file_url_mirror_matches_local_path(work_repo: Path, bare_remote: Path,
                                            tmp_path: Path) -> None:
    git(work_repo, "branch", "develop")
    git(work_repo, "push", "-q", "origin", "develop")
    url = bare_remote.as_uri()
    mirror = GitSource(url, tmp_path / "state")
    assert mirror.is_mirror
    assert mirror.path.parent == tmp_path / "state" / "mirrors"
    assert re.fullmatch(r"[A-Za-z0-9._-]*-remote-[0-9a-f]{12}\.git", mirror.path.name)
    assert mirror.heads() == []  # nothing fetched yet
    result = mirror.refresh()
    assert result.added == ("refs/heads/develop", "refs/heads/main")
    assert result.received_objects > 0
    local = GitSource(str(bare_remote), tmp_path / "state")
    assert mirror.heads() == local.heads()
    assert mirror.refs_digest() == local.refs_digest()
    # A second GitSource on the same URL reuses the mirror without fetching.
    assert GitSource(url, tmp_path / "state").heads() == local.heads()


def test_incremental_fetch_reports_changes(work_repo: Path, bare_remote: Path,
                                           tmp_path: Path) -> None:
    git(work_repo, "branch", "gone")
    git(work_repo, "push", "-q", "origin", "gone", "main:refs/pull/3/head")
    source = GitSource(bare_remote.as_uri(), tmp_path / "state")
    first = source.refresh()
    assert first.added == ("refs/heads/gone", "refs/heads/main", "refs/pull/3/head")
    again = source.refresh()
    assert not again.changed
    assert (again.received_objects, again.received_bytes) == (0, 0)

    commit_file(work_repo, "addons/x.py", "print('x')\n")
    git(work_repo, "push", "-q", "origin", "main", ":gone", ":refs/pull/3/head",
        "main:refs/heads/new/one", "main:refs/pull/4/head", "main:refs/merge-requests/5/head")
    result = source.refresh()
    assert result.added == (
        "refs/heads/new/one", "refs/merge-requests/5/head", "refs/pull/4/head")
    assert result.updated == ("refs/heads/main",)
    assert result.deleted == ("refs/heads/gone", "refs/pull/3/head")
    assert result.received_objects > 0
    assert {h.ref for h in source.heads()} == {
        "refs/heads/main", "refs/heads/new/one", "refs/merge-requests/5/head",
        "refs/pull/4/head"}
    assert source.heads()[0].commit == git(work_repo, "rev-parse", "main")
    assert not source.refresh().changed


def test_refresh_survives_an_interrupted_fetch(work_repo: Path, bare_remote: Path,
                                               tmp_path: Path) -> None:
    source = GitSource(bare_remote.as_uri(), tmp_path / "state")
    source.refresh()
    # What a killed fetch leaves behind: ref lock files and a half-written pack.
    for leftover in ("refs/heads/main.lock", "packed-refs.lock", "objects/pack/pack_git2_x"):
        path = source.path / leftover
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"partial")
    new = commit_file(work_repo, "a.txt", "a\n")
    git(work_repo, "push", "-q", "origin", "main")
    assert source.refresh().updated == ("refs/heads/main",)
    assert source.heads()[0].commit == new
    assert not (source.path / "refs/heads/main.lock").exists()


def test_half_created_mirror_is_recreated(bare_remote: Path, tmp_path: Path) -> None:
    source = GitSource(bare_remote.as_uri(), tmp_path / "state")
    (source.path / "HEAD").write_text("garbage")
    again = GitSource(bare_remote.as_uri(), tmp_path / "state")
    assert again.refresh().added == ("refs/heads/main",)


def test_local_refresh_reports_changes_since_last_call(work_repo: Path, tmp_path: Path) -> None:
    source = GitSource(str(work_repo), tmp_path / "s")
    assert source.refresh().added == ("refs/heads/main",)
    assert not source.refresh().changed
    git(work_repo, "branch", "b")
    assert source.refresh().added == ("refs/heads/b",)


def test_git_daemon_mirror(work_repo: Path, bare_remote: Path, tmp_path: Path,
                           git_daemon: Callable[[Path], str]) -> None:
    url = git_daemon(bare_remote)
    source = GitSource(url, tmp_path / "state")
    assert source.refresh().added == ("refs/heads/main",)
    assert source.refresh().received_objects == 0
    commit_file(work_repo, "b.txt", "b\n")
    git(work_repo, "push", "-q", "origin", "main")
    assert source.refresh().updated == ("refs/heads/main",)


HOSTILE = [
    "feature/ünïcødé-☃-ブランチ",
    "x" * 240,
    "/".join(["segment-" + "y" * 40] * 5)[:250].rstrip("/."),
    "fix/#42+$weird,chars=(ok)!%20'quote'&amp;",
]


@pytest.mark.parametrize("transport", ["local", "file", "daemon"])
def test_hostile_ref_names_round_trip(work_repo: Path, bare_remote: Path, tmp_path: Path,
                                      git_daemon: Callable[[Path], str], transport: str) -> None:
    for name in HOSTILE:
        git(work_repo, "push", "-q", "origin", f"main:refs/heads/{name}")
    location = {
        "local": str(bare_remote), "file": bare_remote.as_uri(), "daemon": git_daemon(bare_remote),
    }[transport]
    source = GitSource(location, tmp_path / "state")
    source.refresh()
    branches = {h.branch for h in source.heads()}
    assert branches == {"main", *HOSTILE}
    assert any(len(b) >= 240 for b in branches)


def test_read_blob_and_tree_id(work_repo: Path, tmp_path: Path) -> None:
    commit_file(work_repo, "addons/acme/__init__.py", "")
    source = GitSource(str(work_repo), tmp_path / "s")
    head = source.heads()[0]
    assert source.tree_id(head.commit) == git(work_repo, "rev-parse", "main^{tree}")
    assert source.tree_id(head.commit, "addons") == git(work_repo, "rev-parse", "main:addons")
    assert source.tree_id(head.commit, "/addons/acme/") == git(
        work_repo, "rev-parse", "main:addons/acme")
    assert source.tree_id(head.commit, "README.md") is None
    assert source.tree_id(head.commit, "nope") is None
    with pytest.raises(OdooOpsError) as err:
        source.tree_id("0" * 40)
    assert err.value.code == "GIT_OBJECT_NOT_FOUND"
    with pytest.raises(OdooOpsError) as err:
        source.read_blob(head.commit)  # a commit, not a blob
    assert err.value.code == "GIT_OBJECT_NOT_FOUND"
    with pytest.raises(OdooOpsError):
        source.read_blob("not-hex")


def test_refs_digest_tracks_heads_only(work_repo: Path, tmp_path: Path) -> None:
    source = GitSource(str(work_repo), tmp_path / "s")
    first = source.refs_digest()
    assert first == source.refs_digest()
    notes.write_env_entry(source.repo, source.heads()[0].commit, "prod", {"state": "ok"}, SIG)
    git(work_repo, "tag", "v1")
    assert source.refs_digest() == first
    git(work_repo, "branch", "other")
    second = source.refs_digest()
    assert second != first
    commit_file(work_repo, "c.txt", "c\n")
    assert source.refs_digest() not in (first, second)


def test_unpushed_local_notes_survive_refresh(work_repo: Path, bare_remote: Path,
                                              tmp_path: Path) -> None:
    source = GitSource(bare_remote.as_uri(), tmp_path / "state")
    source.refresh()
    commit = source.heads()[0].commit
    notes.write_env_entry(source.repo, commit, "local-env", {"state": "mine"}, SIG)
    # Meanwhile another writer put a note on the remote.
    git(work_repo, "notes", "--ref=odooops", "add", "-m",
        json.dumps({"environments": {"remote-env": {"state": "theirs"}}}), "main")
    git(work_repo, "push", "-q", "origin", "refs/notes/odooops")
    result = source.refresh()
    assert result.notes_changed and not result.updated
    envs = notes.read_note(source.repo, commit)["environments"]
    assert envs == {"local-env": {"state": "mine"}, "remote-env": {"state": "theirs"}}


def test_notes_survive_prune_when_remote_has_none(bare_remote: Path, tmp_path: Path) -> None:
    source = GitSource(bare_remote.as_uri(), tmp_path / "state")
    source.refresh()
    commit = source.heads()[0].commit
    notes.write_env_entry(source.repo, commit, "prod", {"state": "ok"}, SIG)
    assert not source.refresh().notes_changed
    assert notes.read_note(source.repo, commit)["environments"] == {"prod": {"state": "ok"}}


def test_not_a_repository(tmp_path: Path) -> None:
    with pytest.raises(OdooOpsError) as err:
        GitSource(str(tmp_path), tmp_path / "state")
    assert err.value.code == "GIT_NOT_A_REPOSITORY"
    assert str(tmp_path) in err.value.message and err.value.remediation
    (tmp_path / "plain").mkdir()
    with pytest.raises(OdooOpsError) as err:
        GitSource((tmp_path / "plain").as_uri(), tmp_path / "state").refresh()
    assert err.value.code == "GIT_NOT_A_REPOSITORY"
    with pytest.raises(OdooOpsError) as err:
        GitSource((tmp_path / "missing.git").as_uri(), tmp_path / "state").refresh()
    assert err.value.code == "GIT_NOT_A_REPOSITORY"


def test_unreachable_remote_redacts_credentials(tmp_path: Path) -> None:
    url = f"https://bob:hunter2pass@127.0.0.1:{free_port()}/org/repo.git"
    source = GitSource(url, tmp_path / "state")
    with pytest.raises(OdooOpsError) as err:
        source.refresh()
    assert err.value.code == "GIT_REMOTE_UNREACHABLE"
    shown = str(err.value) + json.dumps(err.value.to_dict())
    assert "127.0.0.1" in shown
    assert "hunter2pass" not in shown and "bob" not in shown
    assert "hunter2pass" not in source.path.name and "bob" not in source.path.name
    assert "hunter2pass" not in (source.path / "config").read_text()


@pytest.fixture
def http_401() -> Iterator[int]:
    """An HTTP server on loopback that rejects every request with 401 Basic."""

    class Deny(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="git"')
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Deny)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_auth_failure_redacts_credentials(tmp_path: Path, http_401: int) -> None:
    url = f"http://alice:S3cr%40t-token@127.0.0.1:{http_401}/org/repo.git"
    with pytest.raises(OdooOpsError) as err:
        GitSource(url, tmp_path / "state").refresh()
    assert err.value.code == "GIT_AUTH_FAILED"
    shown = str(err.value) + json.dumps(err.value.to_dict())
    for secret in ("S3cr", "t-token", "alice"):
        assert secret not in shown
    assert "http://***@127.0.0.1" in shown


def test_url_helpers() -> None:
    assert is_url("https://github.com/OCA/web.git")
    assert is_url("git@github.com:OCA/web.git")
    assert is_url("file:///srv/repo.git")
    assert not is_url("/srv/repo.git") and not is_url("./repo") and not is_url("repo")
    assert redact_url("x https://u:p@h/r and ssh://t@h2/r") == "x https://***@h/r and ssh://***@h2/r"
    same = mirror_name("https://u:tok@github.com/OCA/web.git")
    assert same == mirror_name("https://github.com/OCA/web.git")
    assert same.startswith("github.com-OCA-web-") and len(same) == len("github.com-OCA-web-") + 16
    assert mirror_name("git@github.com:OCA/web.git").startswith("github.com-OCA-web-")


@pytest.fixture
def short_io_timeout() -> Iterator[None]:
    before = pygit2.settings.server_timeout
    pygit2.settings.server_timeout = 300
    yield
    pygit2.settings.server_timeout = before


def test_hung_remote_times_out(tmp_path: Path, short_io_timeout: None) -> None:
    with socket.socket() as server:  # accepts connections, never answers
        server.bind(("127.0.0.1", 0))
        server.listen(4)
        url = f"git://127.0.0.1:{server.getsockname()[1]}/x.git"
        with pytest.raises(OdooOpsError) as err:
            GitSource(url, tmp_path / "state").refresh()
    assert err.value.code == "GIT_REMOTE_UNREACHABLE"


@pytest.mark.parametrize("cheap", [True, False])
def test_rollback_pins_follow_the_remote(work_repo: Path, bare_remote: Path, tmp_path: Path, cheap: bool) -> None:
    """A pin pushed or deleted by someone else (another server, `git push origin :refs/odooops/pins/x`)
    reaches the mirror, by the cheap poll and by a full refresh alike."""
    source = GitSource(bare_remote.as_uri(), tmp_path / "state")
    source.refresh()
    head = git(work_repo, "rev-parse", "main")
    git(bare_remote, "update-ref", "refs/odooops/pins/staging", head)

    def sync() -> None:
        source.refresh_if_changed() if cheap else source.refresh()

    sync()
    assert source.repo.references.get("refs/odooops/pins/staging") is not None
    git(bare_remote, "update-ref", "-d", "refs/odooops/pins/staging")
    sync()
    assert source.repo.references.get("refs/odooops/pins/staging") is None
    assert source.refresh_if_changed() is None  # in step again: nothing to fetch


def test_a_poll_racing_a_pin_write_keeps_the_pin(work_repo: Path, bare_remote: Path, tmp_path: Path) -> None:
    """The poll read the remote before a rollback pushed its pin; the rollback then set the pin here.
    The poll's stale listing must not delete it (it did: the daemon then redeployed the bad commit)."""
    source = GitSource(bare_remote.as_uri(), tmp_path / "state")
    source.refresh()
    remote, local = source.remote_refs(), source.local_refs()  # the poll's view, read before the pin
    head = git(work_repo, "rev-parse", "main")
    git(bare_remote, "update-ref", "refs/odooops/pins/production", head)  # the rollback: remote first,
    source.repo.references.create("refs/odooops/pins/production", head, force=True)  # then the mirror
    source._fetch_heads(remote, local)  # the poll goes on with what it read
    assert source.repo.references.get("refs/odooops/pins/production") is not None
    git(bare_remote, "update-ref", "-d", "refs/odooops/pins/production")  # cleared elsewhere later:
    source.refresh_if_changed()
    assert source.repo.references.get("refs/odooops/pins/production") is None  # the next poll follows
