"""Status notes: canonical writes, lossless merges, and concurrent pushes to real remotes."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pygit2
import pytest

from reconciler.errors import OdooOpsError
from reconciler.sources import notes
from reconciler.sources.git import NOTES_REF, GitSource

from ._gitutil import commit_file, git

SIG = pygit2.Signature("OdooOps Test", "odooops@example.test", 1_700_000_000, 0)


def _remote_notes(remote: Path) -> dict[str, dict]:
    return dict(notes.iter_notes(pygit2.Repository(str(remote))))


def test_write_is_canonical_and_skips_identical(work_repo: Path) -> None:
    repo = pygit2.Repository(str(work_repo))
    head = str(repo.head.target)
    assert notes.read_note(repo, head) is None
    assert notes.write_env_entry(repo, head, "prod", {"state": "ok", "b": [1, "ü"]}, SIG)
    tip = repo.references[NOTES_REF].target
    raw = git(work_repo, "notes", "--ref=odooops", "show", head)
    assert raw + "\n" == (
        '{"environments":{"prod":{"b":[1,"ü"],"state":"ok"}},'
        '"schema":"odooops/status-note/v1"}\n')
    # Same content, other key order: byte-identical after canonicalisation, nothing written.
    assert not notes.write_env_entry(repo, head, "prod", {"b": [1, "ü"], "state": "ok"}, SIG)
    assert repo.references[NOTES_REF].target == tip
    assert notes.write_env_entry(repo, head, "staging", {"state": "building"}, SIG)
    assert notes.read_note(repo, head) == {
        "schema": notes.SCHEMA,
        "environments": {"prod": {"state": "ok", "b": [1, "ü"]},
                         "staging": {"state": "building"}},
    }
    assert [c for c, _ in notes.iter_notes(repo)] == [head]


def test_invalid_note_is_ignored_then_replaced(work_repo: Path) -> None:
    git(work_repo, "notes", "--ref=odooops", "add", "-m", "not json", "HEAD")
    repo = pygit2.Repository(str(work_repo))
    head = str(repo.head.target)
    assert notes.read_note(repo, head) is None
    assert list(notes.iter_notes(repo)) == []
    assert notes.write_env_entry(repo, head, "prod", {"state": "ok"}, SIG)
    assert notes.read_note(repo, head)["environments"] == {"prod": {"state": "ok"}}


def test_write_on_unknown_commit_fails_clearly(work_repo: Path) -> None:
    repo = pygit2.Repository(str(work_repo))
    with pytest.raises(OdooOpsError) as err:
        notes.write_env_entry(repo, "1" * 40, "prod", {}, SIG)
    assert err.value.code == "NOTE_COMMIT_NOT_FOUND"


def test_merge_rules() -> None:
    old = {"state": "old", "updated_at": "2025-01-01T10:00:00Z"}
    new = {"state": "new", "updated_at": "2025-01-01T11:00:00+00:00"}
    a = {"environments": {"prod": old, "only-a": {"x": 1}}}
    b = {"environments": {"prod": new, "only-b": {"y": 2}}}
    merged = notes.merge_docs(a, b)
    assert merged == notes.merge_docs(b, a)
    assert merged["environments"] == {"prod": new, "only-a": {"x": 1}, "only-b": {"y": 2}}
    # Equal stamps: the choice must not depend on which side is "ours".
    t1 = {"state": "a", "updated_at": 5}
    t2 = {"state": "b", "updated_at": 5}
    one = notes.merge_docs({"environments": {"e": t1}}, {"environments": {"e": t2}})
    two = notes.merge_docs({"environments": {"e": t2}}, {"environments": {"e": t1}})
    assert one == two
    # A missing stamp loses against any stamp.
    stamped = {"updated_at": "1999-01-01T00:00:00"}
    assert notes.merge_docs({"environments": {"e": {}}}, {"environments": {"e": stamped}}) == {
        "schema": notes.SCHEMA, "environments": {"e": stamped}}


def _clone(url: str, tmp_path: Path, name: str) -> pygit2.Repository:
    source = GitSource(url, tmp_path / name)
    source.refresh()
    return source.repo


@pytest.fixture(params=["file", "daemon"])
def remote_url(request: pytest.FixtureRequest, bare_remote: Path,
               git_daemon: Callable[[Path], str]) -> str:
    return bare_remote.as_uri() if request.param == "file" else git_daemon(bare_remote)


def test_push_creates_merges_and_fast_forwards(work_repo: Path, bare_remote: Path,
                                              remote_url: str, tmp_path: Path) -> None:
    c1 = git(work_repo, "rev-parse", "HEAD")
    c2 = commit_file(work_repo, "x.txt", "x\n")
    git(work_repo, "push", "-q", "origin", "main")
    a = _clone(remote_url, tmp_path, "a")
    b = _clone(remote_url, tmp_path, "b")
    assert notes.push_notes(a, remote_url) == notes.PushResult(False, 0, 0, None)

    notes.write_env_entry(a, c1, "prod", {"v": "a"}, SIG)
    first = notes.push_notes(a, remote_url, base_delay=0.01)
    assert first.pushed and first.merges == 0
    assert not notes.push_notes(a, remote_url).pushed  # nothing new

    notes.write_env_entry(b, c2, "dev", {"v": "b"}, SIG)
    notes.write_env_entry(b, c1, "staging", {"v": "b"}, SIG)
    second = notes.push_notes(b, remote_url, base_delay=0.01)
    assert second.pushed and second.merges == 1
    assert b.descendant_of(second.remote_commit, first.remote_commit)  # never forced
    assert _remote_notes(bare_remote) == {
        c1: {"schema": notes.SCHEMA, "environments": {"prod": {"v": "a"}, "staging": {"v": "b"}}},
        c2: {"schema": notes.SCHEMA, "environments": {"dev": {"v": "b"}}},
    }
    # a is behind: its push fast-forwards locally and moves nothing remotely.
    third = notes.push_notes(a, remote_url)
    assert not third.pushed and third.merges == 0
    assert str(a.references[NOTES_REF].target) == second.remote_commit


def test_same_env_on_both_sides_keeps_the_later_entry(work_repo: Path, bare_remote: Path,
                                                      tmp_path: Path) -> None:
    url = bare_remote.as_uri()
    head = git(work_repo, "rev-parse", "HEAD")
    a = _clone(url, tmp_path, "a")
    b = _clone(url, tmp_path, "b")
    later = {"state": "ready", "updated_at": "2025-03-01T12:00:01Z"}
    notes.write_env_entry(a, head, "prod", later, SIG)
    notes.write_env_entry(b, head, "prod", {"state": "failed", "updated_at": "2025-03-01T12:00:00Z"},
                          SIG)
    notes.push_notes(a, url)
    assert notes.push_notes(b, url).merges == 1
    assert _remote_notes(bare_remote)[head]["environments"]["prod"] == later


def test_concurrent_writers_lose_nothing(work_repo: Path, bare_remote: Path, remote_url: str,
                                        tmp_path: Path) -> None:
    commits = [git(work_repo, "rev-parse", "HEAD")]
    for i in range(3):
        commits.append(commit_file(work_repo, f"f{i}.txt", f"{i}\n"))
    git(work_repo, "push", "-q", "origin", "main")
    writers = {name: _clone(remote_url, tmp_path, name) for name in ("w1", "w2")}
    rounds = 4
    barrier = threading.Barrier(len(writers))
    pushed_tips: list[str] = []
    errors: list[BaseException] = []

    def run(name: str, repo: pygit2.Repository) -> None:
        try:
            for r in range(rounds):
                # Same commit, different env (shared) plus a commit only this writer touches.
                notes.write_env_entry(repo, commits[0], f"{name}-r{r}", {"round": r}, SIG)
                own = commits[1] if name == "w1" else commits[2]
                notes.write_env_entry(repo, own, name, {"round": r}, SIG)
                barrier.wait(timeout=30)
                result = notes.push_notes(repo, remote_url, attempts=12, base_delay=0.01)
                if result.remote_commit:
                    pushed_tips.append(result.remote_commit)
        except BaseException as exc:  # surfaced in the main thread below
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=run, args=item) for item in writers.items()]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    remote = pygit2.Repository(str(bare_remote))
    final = str(remote.references[NOTES_REF].target)
    assert all(tip == final or remote.descendant_of(final, tip) for tip in pushed_tips)
    got = _remote_notes(bare_remote)
    assert set(got[commits[0]]["environments"]) == {
        f"{w}-r{r}" for w in writers for r in range(rounds)}
    assert got[commits[1]]["environments"] == {"w1": {"round": rounds - 1}}
    assert got[commits[2]]["environments"] == {"w2": {"round": rounds - 1}}
    assert commits[3] not in got


def test_push_to_unreachable_remote(work_repo: Path, tmp_path: Path) -> None:
    repo = pygit2.Repository(str(work_repo))
    notes.write_env_entry(repo, str(repo.head.target), "prod", {}, SIG)
    with pytest.raises(OdooOpsError) as err:
        notes.push_notes(repo, "git://u:pw-secret@127.0.0.1:1/x.git")
    assert err.value.code == "GIT_REMOTE_UNREACHABLE"
    assert "pw-secret" not in str(err.value)


def test_push_refused_by_a_hook_reports_the_reason(work_repo: Path, bare_remote: Path,
                                                   git_daemon: Callable[[Path], str],
                                                   tmp_path: Path) -> None:
    hook = bare_remote / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'notes are frozen' >&2\nexit 1\n")
    hook.chmod(0o755)
    url = git_daemon(bare_remote)
    repo = _clone(url, tmp_path, "a")
    notes.write_env_entry(repo, git(work_repo, "rev-parse", "HEAD"), "prod", {}, SIG)
    with pytest.raises(OdooOpsError) as err:
        notes.push_notes(repo, url, attempts=2, base_delay=0.001)
    assert err.value.code == "NOTES_PUSH_CONFLICT"
    assert err.value.details["retries"] == 2
    assert "declined" in err.value.details["last_rejection"]


def test_smart_push_sends_the_merged_commit_even_if_a_refresh_moved_the_ref_meanwhile(
        work_repo: Path, bare_remote: Path, git_daemon: Callable[[Path], str], tmp_path: Path) -> None:
    """The window the daemon hit: push_notes merged our note into commit Y, then a refresh in the poll thread
    force-fetched the remote's notes (X) into refs/notes/odooops before merging ours back. Pushing the ref by
    name in that window sent the remote its own tip X and reported success; the exact commit Y must go."""
    url = git_daemon(bare_remote)
    c1 = git(work_repo, "rev-parse", "HEAD")
    git(work_repo, "push", "-q", "origin", "main")
    a = _clone(url, tmp_path, "a")
    notes.write_env_entry(a, c1, "prod", {"v": "first"}, SIG)
    first = notes.push_notes(a, url, base_delay=0.01)
    assert first.pushed and first.remote_commit
    notes.write_env_entry(a, c1, "dev", {"v": "second"}, SIG)
    ours = str(a.references[NOTES_REF].target)
    a.references.create(NOTES_REF, pygit2.Oid(hex=first.remote_commit), force=True)  # the refresh's force-fetch
    notes._push_smart(a, url, ours)
    assert _remote_notes(bare_remote)[c1]["environments"] == {"prod": {"v": "first"}, "dev": {"v": "second"}}
    assert not [r for r in a.references if r.startswith("refs/odooops-sync/")]  # the private ref is gone
