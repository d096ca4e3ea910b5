"""The cheap poll: one ref advertisement, and a fetch only when the remote differs from the mirror."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pygit2
import pytest

from reconciler.errors import OdooOpsError
from reconciler.sources.git import NOTES_REF, GitSource
from reconciler.sources.notes import push_notes, write_env_entry
from tests.daemon.gitserve import free_port, git, git_daemon, http_git_server


@pytest.fixture(params=["git-daemon", "smart-http"])
def origin(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, Path, Path]]:
    """(URL, bare repository, work clone) over git:// or smart HTTP on loopback."""
    base = tmp_path / "srv"
    base.mkdir()
    bare = base / "p.git"
    git(tmp_path, "init", "-q", "--bare", str(bare))
    serve = git_daemon if request.param == "git-daemon" else http_git_server
    with serve(base) as root:
        url = f"{root}/p.git"
        work = tmp_path / "work"
        git(tmp_path, "init", "-q", "-b", "main", str(work))
        (work / ".odooops.yaml").write_text("version: 1\n")
        git(work, "add", ".")
        git(work, "commit", "-q", "-m", "init")
        git(work, "remote", "add", "origin", url)
        git(work, "push", "-q", "origin", "main")
        yield url, bare, work


def fetch_head(src: GitSource) -> float | None:
    path = src.path / "FETCH_HEAD"
    return path.stat().st_mtime_ns if path.exists() else None


def test_unchanged_remote_costs_no_fetch(origin: tuple[str, Path, Path], tmp_path: Path) -> None:
    url, _bare, work = origin
    src = GitSource(url, tmp_path / "state")
    first = src.refresh_if_changed()
    assert first is not None and first.added == ("refs/heads/main",)
    stamp = fetch_head(src)
    assert src.refresh_if_changed() is None
    assert fetch_head(src) == stamp  # no fetch happened
    assert src.remote_refs() == src.local_refs()

    # a push, a new PR ref, and a deletion are each seen by the next poll
    (work / "a.txt").write_text("a\n")
    git(work, "add", "a.txt")
    git(work, "commit", "-q", "-m", "a")
    git(work, "push", "-q", "origin", "main", "HEAD:refs/pull/3/head", "HEAD:refs/heads/feature/x")
    changed = src.refresh_if_changed()
    assert changed is not None
    assert changed.updated == ("refs/heads/main",)
    assert changed.added == ("refs/heads/feature/x", "refs/pull/3/head")
    git(work, "push", "-q", "origin", ":refs/heads/feature/x")
    gone = src.refresh_if_changed()
    assert gone is not None and gone.deleted == ("refs/heads/feature/x",)
    # tags are not fetched, so they are no reason to fetch either
    git(work, "push", "-q", "origin", "HEAD:refs/tags/v1")
    assert src.refresh_if_changed() is None


def test_unpushed_local_notes_are_no_reason_to_fetch(origin: tuple[str, Path, Path], tmp_path: Path) -> None:
    url, bare, _work = origin
    src = GitSource(url, tmp_path / "state")
    src.refresh()
    head = str(src.repo.references["refs/heads/main"].target)
    sig = pygit2.Signature("t", "t@example.test")
    write_env_entry(src.repo, head, "main", {"env": "main", "state": "running", "updated_at": 1.0}, sig)
    remote = src.remote_refs()
    assert NOTES_REF not in remote and src.notes_ahead_of(remote)
    assert src.refresh_if_changed() is None
    push_notes(src.repo, url)
    assert not src.notes_ahead_of(src.remote_refs()) and src.refresh_if_changed() is None
    # someone else adds a note on the remote: now the notes differ the other way, and we fetch
    other = GitSource(url, tmp_path / "state2")
    other.refresh()
    write_env_entry(other.repo, head, "other", {"env": "other", "state": "running", "updated_at": 2.0}, sig)
    push_notes(other.repo, url)
    fetched = src.refresh_if_changed()
    assert fetched is not None and fetched.notes_changed
    assert git(bare, "notes", "--ref", "odooops", "show", head).count('"env"') == 2


def test_unreachable_remote_is_a_transient_error(tmp_path: Path) -> None:
    src = GitSource(f"git://127.0.0.1:{free_port()}/nothing.git", tmp_path / "state")
    with pytest.raises(OdooOpsError) as exc:
        src.refresh_if_changed()
    assert exc.value.code == "GIT_REMOTE_UNREACHABLE"


@contextmanager
def counting_relay(target_port: int) -> Iterator[tuple[int, list[int]]]:
    """A TCP relay on loopback in front of the git daemon: (its port, [connections so far])."""
    server = socket.create_server(("127.0.0.1", 0))
    accepted = [0]

    def pump(src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)

    def serve() -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return
            accepted[0] += 1
            upstream = socket.create_connection(("127.0.0.1", target_port))
            threading.Thread(target=pump, args=(client, upstream), daemon=True).start()
            threading.Thread(target=pump, args=(upstream, client), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield server.getsockname()[1], accepted
    finally:
        server.close()


def test_a_moved_branch_is_listed_and_fetched_over_one_connection(tmp_path: Path) -> None:
    """The poll reads the remote's refs and fetches what moved over the same connection: one ref
    advertisement per poll, not two (fails if the fetch connects again)."""
    base = tmp_path / "srv"
    base.mkdir()
    git(tmp_path, "init", "-q", "--bare", str(base / "p.git"))
    port = free_port()
    with git_daemon(base, port) as root, counting_relay(port) as (relay, accepted):
        work = tmp_path / "work"
        git(tmp_path, "init", "-q", "-b", "main", str(work))
        git(work, "commit", "-q", "--allow-empty", "-m", "init")
        git(work, "push", "-q", f"{root}/p.git", "main")
        src = GitSource(f"git://127.0.0.1:{relay}/p.git", tmp_path / "state")
        src.refresh()
        for n in range(3):
            git(work, "commit", "-q", "--allow-empty", "-m", f"change {n}")
            git(work, "push", "-q", f"{root}/p.git", "main")
            before = accepted[0]
            fetched = src.refresh_if_changed()
            assert fetched is not None and fetched.updated == ("refs/heads/main",)
            assert str(src.repo.references["refs/heads/main"].target) == git(work, "rev-parse", "HEAD")
            assert accepted[0] - before == 1
        before = accepted[0]
        assert src.refresh_if_changed() is None and accepted[0] - before == 1
