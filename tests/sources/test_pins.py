"""Rollback pins in real repositories: written as blobs under refs/odooops/pins, pushed, fetched, removed."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pygit2
import pytest

from reconciler.errors import OdooOpsError
from reconciler.sources import pins

from ._gitutil import commit_file, git


def _mirror(tmp_path: Path, url: str, name: str = "mirror.git") -> pygit2.Repository:
    repo = pygit2.init_repository(str(tmp_path / name), bare=True)
    repo.remotes.create_anonymous(url).fetch(["+refs/heads/*:refs/heads/*"])
    return repo


def test_write_read_and_delete_a_pin(work_repo: Path) -> None:
    repo = pygit2.Repository(str(work_repo))
    first = git(work_repo, "rev-list", "--max-parents=0", "HEAD")
    head = git(work_repo, "rev-parse", "HEAD")
    pin = pins.write_pin(repo, "production", first, head, reason="bad deploy", actor="alice", now=100.0)
    assert git(work_repo, "cat-file", "-t", pins.pin_ref("production")) == "commit"
    doc = json.loads(git(work_repo, "show", f"{pins.pin_ref('production')}:pin.json"))
    assert doc == {"schema": "odooops/pin/v1", "env": "production", "commit": first, "branch_head": head,
                   "reason": "bad deploy", "actor": "alice", "created_at": 100.0}
    [(env, read)] = pins.read_pins(repo).items()
    assert env == "production" and read.commit == pin.commit and read.branch_head == head
    assert read.config_blob is None  # the first commit has no .odooops.yaml yet
    assert pins.read_pins(repo)["production"].commit_time == repo[first].commit_time
    key = pins.pins_key(repo)
    # a second pin of the same env keeps the first as its parent: the ref's log is the pin history
    pins.write_pin(repo, "production", head, head, reason="again", actor="bob")
    assert git(work_repo, "log", "--format=%an", pins.pin_ref("production")).split() == ["bob", "alice"]
    assert pins.pins_key(repo) != key
    assert pins.delete_pin(repo, "production") and not pins.delete_pin(repo, "production")
    assert pins.read_pins(repo) == {} and pins.pins_key(repo) != key


def test_unusable_pins_are_ignored(work_repo: Path) -> None:
    repo = pygit2.Repository(str(work_repo))
    head = git(work_repo, "rev-parse", "HEAD")
    for env, doc in {"a": {"env": "other", "commit": head, "branch_head": head},  # names another env
                     "b": {"env": "b", "commit": "f" * 40, "branch_head": head},  # commit not in the repo
                     "c": "not a pin"}.items():
        repo.references.create(pins.pin_ref(env), repo.create_blob(json.dumps(doc).encode()))
    assert pins.read_pins(repo) == {}
    with pytest.raises(OdooOpsError) as err:
        pins.write_pin(repo, "d", "e" * 40, head, reason="", actor="x")
    assert err.value.code == "PIN_COMMIT_NOT_FOUND"


@pytest.mark.parametrize("transport", ["file", "git"])
def test_push_fetch_and_remove_pins(tmp_path: Path, bare_remote: Path, work_repo: Path, transport: str,
                                    git_daemon: Callable[[Path], str]) -> None:
    url = bare_remote.as_uri() if transport == "file" else git_daemon(bare_remote)
    mirror = _mirror(tmp_path, url)
    head = str(mirror.references["refs/heads/main"].target)
    parent = str(mirror[head].parent_ids[0])
    pins.write_pin(mirror, "production", parent, head, reason="r", actor="a")
    pins.push_pin(mirror, url, "production")
    assert git(bare_remote, "cat-file", "-t", pins.pin_ref("production")) == "commit"
    other = _mirror(tmp_path, url, "other.git")
    assert set(pins.fetch_pins(other, url)) == {pins.pin_ref("production")}
    assert pins.read_pins(other)["production"].commit == parent
    # the mirror that wrote the pin still fetches branch heads from a remote advertising it
    commit_file(work_repo, "b.txt", "b\n", "more")
    git(work_repo, "push", "-q", str(bare_remote), "main")
    mirror.remotes.create_anonymous(url).fetch(["+refs/heads/main:refs/heads/main"])
    assert str(mirror.references["refs/heads/main"].target) == git(work_repo, "rev-parse", "HEAD")
    # removal travels the same way, and a fetch prunes it from other mirrors
    pins.delete_pin(mirror, "production")
    pins.push_pin(mirror, url, "production")
    assert pins.pin_ref("production") not in git(bare_remote, "for-each-ref", "--format=%(refname)")
    assert pins.fetch_pins(other, url) == {} and pins.read_pins(other) == {}


@pytest.mark.parametrize("transport", ["file", "git"])
def test_publish_ref_refuses_what_is_not_a_fast_forward(tmp_path: Path, bare_remote: Path, work_repo: Path,
                                                       transport: str, git_daemon: Callable[[Path], str]) -> None:
    url = bare_remote.as_uri() if transport == "file" else git_daemon(bare_remote)
    old = git(work_repo, "rev-parse", "HEAD")
    new = commit_file(work_repo, "a.txt", "a\n", "ahead")
    mirror = _mirror(tmp_path, work_repo.as_uri())
    pins.publish_ref(mirror, url, "refs/heads/main", new, expected={old})
    assert git(bare_remote, "rev-parse", "refs/heads/main") == new
    # the remote is now at `new`: moving it back is not a fast-forward
    with pytest.raises(OdooOpsError) as err:
        pins.publish_ref(mirror, url, "refs/heads/main", old, expected={old})
    assert err.value.code in ("REMOTE_REF_MOVED", "REMOTE_REF_REJECTED")
    assert git(bare_remote, "rev-parse", "refs/heads/main") == new
