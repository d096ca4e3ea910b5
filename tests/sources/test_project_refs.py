"""Per-project notes refs and pin prefixes (docs/adr/0037) in real repositories: two projects made from one
repository keep their notes and pins apart, and the legacy project's refs stay what they were."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pygit2
import pytest

from reconciler.core.projects import ProjectName, notes_ref, pin_prefix
from reconciler.sources import notes, pins, probe
from reconciler.sources.git import NOTES_REF, PINS, GitSource

from ._gitutil import commit_file, git

SIG = pygit2.Signature("OdooOps Test", "odooops@example.test", 1_700_000_000, 0)
ACME, BETA = ProjectName("acme"), ProjectName("beta-shop")
ACME_NOTES, BETA_NOTES = notes_ref(ACME), notes_ref(BETA)
ACME_PINS = pin_prefix(ACME)


def _remote_notes(remote: Path, ref: str) -> dict[str, dict]:
    return {c: doc["environments"] for c, doc in notes.iter_notes(pygit2.Repository(str(remote)), ref=ref)}


def _ref(repo: pygit2.Repository, name: str) -> str | None:
    found = repo.references.get(name)
    return str(found.target) if found is not None else None


@pytest.fixture(params=["file", "daemon"])
def remote_url(request: pytest.FixtureRequest, bare_remote: Path, git_daemon: Callable[[Path], str]) -> str:
    return bare_remote.as_uri() if request.param == "file" else git_daemon(bare_remote)


def test_the_legacy_names_are_the_sources_defaults() -> None:
    assert (notes_ref(None), pin_prefix(None)) == (NOTES_REF, PINS) == (notes.NOTES_REF, pins.PIN_PREFIX)
    assert (ACME_NOTES, ACME_PINS) == ("refs/notes/odooops-acme", "refs/odooops/projects/acme/pins/")


def test_a_source_defaults_to_the_legacy_refs_and_refuses_foreign_ones(work_repo: Path, tmp_path: Path) -> None:
    legacy = GitSource(str(work_repo), tmp_path / "s")
    assert (legacy.notes_ref, legacy.pin_prefix) == ("refs/notes/odooops", "refs/odooops/pins/")
    acme = GitSource(str(work_repo), tmp_path / "s", notes_ref=ACME_NOTES, pin_prefix=ACME_PINS)
    assert (acme.notes_ref, acme.pin_prefix) == (ACME_NOTES, ACME_PINS)
    for bad in ({"notes_ref": "refs/notes/commits"}, {"notes_ref": "refs/heads/odooops-acme"},
                {"pin_prefix": "refs/heads/"}, {"pin_prefix": "refs/odooops/projects/acme/"}):
        with pytest.raises(ValueError):
            GitSource(str(work_repo), tmp_path / "s", **bad)


def test_two_projects_notes_on_one_repository_are_pushed_independently(
        work_repo: Path, bare_remote: Path, remote_url: str, tmp_path: Path) -> None:
    """Two projects made from one repository note the same commit under the same env name: neither
    write nor push touches the other's ref, locally or on the remote, nor the legacy one."""
    commit = git(work_repo, "rev-parse", "HEAD")
    a = GitSource(remote_url, tmp_path / "a", notes_ref=ACME_NOTES)
    b = GitSource(remote_url, tmp_path / "b", notes_ref=BETA_NOTES)
    a.refresh()
    b.refresh()
    git(work_repo, "notes", "--ref=odooops", "add", "-m",
        json.dumps({"environments": {"main": {"v": "legacy"}}}), commit)
    git(work_repo, "push", "-q", "origin", NOTES_REF)
    legacy_tip = git(bare_remote, "rev-parse", NOTES_REF)

    assert notes.write_env_entry(a.repo, commit, "main", {"v": "acme-1"}, SIG, ref=a.notes_ref)
    assert notes.write_env_entry(b.repo, commit, "main", {"v": "beta-1"}, SIG, ref=b.notes_ref)
    assert notes.read_note(a.repo, commit) is None  # nothing was written to the legacy ref
    assert notes.push_notes(a.repo, remote_url, ref=a.notes_ref).pushed
    assert notes.push_notes(b.repo, remote_url, ref=b.notes_ref).pushed
    # each push saw no remote notes of its own ref: nothing to merge, nothing overwritten
    assert _remote_notes(bare_remote, ACME_NOTES) == {commit: {"main": {"v": "acme-1"}}}
    assert _remote_notes(bare_remote, BETA_NOTES) == {commit: {"main": {"v": "beta-1"}}}

    beta_tip = git(bare_remote, "rev-parse", BETA_NOTES)
    notes.write_env_entry(a.repo, commit, "main", {"v": "acme-2"}, SIG, ref=a.notes_ref)
    second = notes.push_notes(a.repo, remote_url, ref=a.notes_ref)
    assert second.pushed and second.merges == 0
    assert _remote_notes(bare_remote, ACME_NOTES) == {commit: {"main": {"v": "acme-2"}}}
    assert git(bare_remote, "rev-parse", BETA_NOTES) == beta_tip
    assert git(bare_remote, "rev-parse", NOTES_REF) == legacy_tip
    assert _remote_notes(bare_remote, NOTES_REF) == {commit: {"main": {"v": "legacy"}}}
    # a refresh brings the other project's notes without mixing them into one's own
    a.refresh()
    assert notes.read_note(a.repo, commit, ref=BETA_NOTES)["environments"] == {"main": {"v": "beta-1"}}
    assert notes.read_note(a.repo, commit, ref=ACME_NOTES)["environments"] == {"main": {"v": "acme-2"}}


def test_a_project_source_keeps_its_unpushed_notes_and_leaves_the_legacy_ref_alone(
        work_repo: Path, bare_remote: Path, tmp_path: Path) -> None:
    url = bare_remote.as_uri()
    git(work_repo, "push", "-q", "origin", "main")
    commit = git(work_repo, "rev-parse", "HEAD")
    source = GitSource(url, tmp_path / "state", notes_ref=ACME_NOTES)
    source.refresh()
    notes.write_env_entry(source.repo, commit, "local-env", {"state": "mine"}, SIG, ref=source.notes_ref)
    notes.write_env_entry(source.repo, commit, "legacy-env", {"state": "local"}, SIG)  # legacy, unpushed
    legacy_tip = _ref(source.repo, NOTES_REF)
    # notes merely ahead of the remote are no reason to fetch
    assert source.notes_ahead_of(source.remote_refs())
    assert source.refresh_if_changed() is None

    # another writer of the same project pushes a note meanwhile
    git(work_repo, "notes", "--ref=odooops-acme", "add", "-m",
        json.dumps({"environments": {"remote-env": {"state": "theirs"}}}), "main")
    git(work_repo, "push", "-q", "origin", ACME_NOTES)
    assert not source.notes_ahead_of(source.remote_refs())
    result = source.refresh_if_changed()
    assert result is not None and result.notes_changed and not result.updated
    assert notes.read_note(source.repo, commit, ref=ACME_NOTES)["environments"] == {
        "local-env": {"state": "mine"}, "remote-env": {"state": "theirs"}}
    assert _ref(source.repo, NOTES_REF) == legacy_tip
    assert notes.read_note(source.repo, commit)["environments"] == {"legacy-env": {"state": "local"}}
    pushed = notes.push_notes(source.repo, url, ref=source.notes_ref)
    assert pushed.pushed and pushed.merges == 0  # the refresh already merged the remote's note
    assert NOTES_REF not in git(bare_remote, "for-each-ref", "--format=%(refname)").split()


def test_a_shared_mirror_keeps_every_projects_unpushed_notes(work_repo: Path, bare_remote: Path,
                                                             tmp_path: Path) -> None:
    """Two projects from one URL share one mirror: a refresh by either must not drop the other's
    (nor the legacy project's) unpushed notes when the remote moved their refs too."""
    url = bare_remote.as_uri()
    commit = git(work_repo, "rev-parse", "HEAD")
    acme = GitSource(url, tmp_path / "state", notes_ref=ACME_NOTES)
    beta = GitSource(url, tmp_path / "state", notes_ref=BETA_NOTES)
    assert acme.path == beta.path
    acme.refresh()
    for ref in (NOTES_REF, ACME_NOTES, BETA_NOTES):
        notes.write_env_entry(beta.repo, commit, "mine", {"ref": ref}, SIG, ref=ref)
        name = ref.removeprefix("refs/notes/")
        git(work_repo, "notes", f"--ref={name}", "add", "-f", "-m",
            json.dumps({"environments": {"theirs": {"ref": ref}}}), commit)
        git(work_repo, "push", "-q", "origin", ref)
    assert acme.refresh().notes_changed
    for ref in (NOTES_REF, ACME_NOTES, BETA_NOTES):
        assert notes.read_note(beta.repo, commit, ref=ref)["environments"] == {
            "mine": {"ref": ref}, "theirs": {"ref": ref}}, ref


def test_project_pins_are_read_with_the_env_name_and_kept_apart(work_repo: Path) -> None:
    repo = pygit2.Repository(str(work_repo))
    first = git(work_repo, "rev-list", "--max-parents=0", "HEAD")
    head = git(work_repo, "rev-parse", "HEAD")
    pins.write_pin(repo, "main", first, head, reason="acme rollback", actor="alice", prefix=ACME_PINS)
    assert git(work_repo, "cat-file", "-t", "refs/odooops/projects/acme/pins/main") == "commit"
    assert pins.read_pins(repo) == {} and pins.pins_key(repo) == ()  # the legacy project has no pin
    [(env, pin)] = pins.read_pins(repo, prefix=ACME_PINS).items()
    assert env == "main" and pin.env == "main" and pin.commit == first and pin.reason == "acme rollback"
    key = pins.pins_key(repo, prefix=ACME_PINS)
    pins.write_pin(repo, "main", head, head, reason="legacy", actor="bob")
    assert pins.read_pins(repo)["main"].commit == head
    assert pins.read_pins(repo, prefix=ACME_PINS)["main"].commit == first
    assert pins.pins_key(repo, prefix=ACME_PINS) == key
    assert pins.read_pins(repo, prefix=pin_prefix(BETA)) == {}
    assert pins.delete_pin(repo, "main", prefix=ACME_PINS)
    assert not pins.delete_pin(repo, "main", prefix=ACME_PINS)
    assert pins.read_pins(repo, prefix=ACME_PINS) == {} and set(pins.read_pins(repo)) == {"main"}


@pytest.mark.parametrize("cheap", [True, False])
def test_project_pins_are_pushed_and_reach_the_mirror(work_repo: Path, bare_remote: Path, remote_url: str,
                                                      tmp_path: Path, cheap: bool) -> None:
    git(work_repo, "push", "-q", "origin", "main")
    writer = GitSource(remote_url, tmp_path / "writer", notes_ref=ACME_NOTES, pin_prefix=ACME_PINS)
    reader = GitSource(remote_url, tmp_path / "reader", notes_ref=ACME_NOTES, pin_prefix=ACME_PINS)
    writer.refresh()
    reader.refresh()
    head = writer.heads()[0].commit
    parent = str(writer.repo[head].parent_ids[0])
    pins.write_pin(writer.repo, "main", parent, head, reason="r", actor="a", prefix=writer.pin_prefix)
    pins.push_pin(writer.repo, remote_url, "main", prefix=writer.pin_prefix)
    assert git(bare_remote, "cat-file", "-t", "refs/odooops/projects/acme/pins/main") == "commit"

    def sync() -> None:
        reader.refresh_if_changed() if cheap else reader.refresh()

    sync()
    found = pins.read_pins(reader.repo, reader.ref_targets(), prefix=reader.pin_prefix)
    assert set(found) == {"main"} and found["main"].commit == parent
    assert pins.read_pins(reader.repo, reader.ref_targets()) == {}
    assert reader.refresh_if_changed() is None  # in step: the project's pin is among the compared refs
    # removal travels the same way
    pins.delete_pin(writer.repo, "main", prefix=writer.pin_prefix)
    pins.push_pin(writer.repo, remote_url, "main", prefix=writer.pin_prefix)
    sync()
    assert pins.read_pins(reader.repo, prefix=reader.pin_prefix) == {}
    # fetch_pins with the prefix brings a project's pins into a plain repository, and prunes them
    commit_file(work_repo, "b.txt", "b\n")
    other = pygit2.init_repository(str(tmp_path / "other.git"), bare=True)
    other.remotes.create_anonymous(remote_url).fetch(["+refs/heads/*:refs/heads/*"])
    git(bare_remote, "update-ref", "refs/odooops/projects/acme/pins/dev", head)
    assert set(pins.fetch_pins(other, remote_url, prefix=ACME_PINS)) == {"refs/odooops/projects/acme/pins/dev"}
    assert pins.fetch_pins(other, remote_url) == {}
    git(bare_remote, "update-ref", "-d", "refs/odooops/projects/acme/pins/dev")
    assert pins.fetch_pins(other, remote_url, prefix=ACME_PINS) == {}


def test_probe_takes_the_projects_notes_ref(bare_remote: Path, git_daemon: Callable[[Path], str]) -> None:
    assert probe.notes_push_access(str(bare_remote), notes_ref=ACME_NOTES).checked
    assert probe.notes_push_access(git_daemon(bare_remote), notes_ref=ACME_NOTES).checked
