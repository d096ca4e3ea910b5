"""The installation's project registry: names bound to repositories, at most one legacy project."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from reconciler.core.projects import ProjectName
from reconciler.errors import OdooOpsError
from reconciler.platform.project_registry import ProjectRegistry


def test_a_name_is_registered_once_and_bound_to_its_repository(tmp_path: Path) -> None:
    reg = ProjectRegistry(tmp_path)
    first = reg.resolve("Acme", "/srv/acme.git", legacy_state=lambda: False)
    assert (first.name, first.scheme, first.naming) == (ProjectName("acme"), "namespaced", ProjectName("acme"))
    assert reg.resolve("acme", "/srv/acme.git", legacy_state=lambda: True) == first  # registered: the flag is moot
    with pytest.raises(OdooOpsError) as refused:
        reg.resolve("ACME", "/srv/other.git", legacy_state=lambda: False)
    assert refused.value.code == "PROJECT_REPO_MISMATCH" and "'ACME' (normalised: 'acme')" in refused.value.message
    assert [p.to_json()["location"] for p in reg.all()] == ["/srv/acme.git"]


def test_only_the_first_project_with_older_environments_takes_them_over(tmp_path: Path) -> None:
    reg = ProjectRegistry(tmp_path)
    old = reg.resolve("old-one", "/srv/old.git", legacy_state=lambda: True)
    assert old.scheme == "legacy" and old.naming is None
    # Another repository with state from before projects (impossible to run side by side before, possible on
    # disk) cannot take the installation over a second time: it is namespaced.
    second = reg.resolve("old-two", "/srv/old2.git", legacy_state=lambda: True)
    assert second.scheme == "namespaced"
    assert {p.name.value: p.scheme for p in reg.all()} == {"old-one": "legacy", "old-two": "namespaced"}


def test_concurrent_first_uses_agree(tmp_path: Path) -> None:
    results: list[str] = []
    errors: list[BaseException] = []

    def register(i: int) -> None:
        try:
            results.append(ProjectRegistry(tmp_path).resolve(f"p{i % 3}x", f"/srv/{i % 3}.git",
                                                             legacy_state=lambda: True).scheme)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=register, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(results) == 12
    schemes = {p.name.value: p.scheme for p in ProjectRegistry(tmp_path).all()}
    assert len(schemes) == 3 and sorted(schemes.values()).count("legacy") == 1


def test_a_bad_name_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    with pytest.raises(OdooOpsError) as refused:
        ProjectRegistry(tmp_path).resolve("--", "/srv/a.git", legacy_state=lambda: False)
    assert refused.value.code == "PROJECT_NAME_INVALID"
    assert ProjectRegistry(tmp_path).all() == []
