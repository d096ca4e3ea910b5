"""Branch-name validation agrees with `git check-ref-format --branch` (real git), plus the platform's limits."""

from __future__ import annotations

import os
import subprocess

import pytest

from reconciler.core.refnames import MAX_BRANCH_BYTES, branch_name_problem

NAMES = [
    "main", "feature/x", "feature/x-1.2", "release/17.0", "a_b", "ÄÖ/ü", "x@y", "a.b/c.d", "pr-7", "a+b", "a{b}",
    "a..b", "-x", "x y", "x.lock", "x/y.lock/z", ".hidden", "a/.b", "a\x01b", "a\x7fb", "x:y", "x?", "x*", "x[1]",
    "a\\b", "x@{1}", "a//b", "/a", "a/", "a.", "~x", "x^", "", "a/b.", "...",
]


def git_accepts(name: str) -> bool:
    proc = subprocess.run(["git", "check-ref-format", "--branch", name], capture_output=True, check=False,
                          env={**os.environ, "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull})
    return proc.returncode == 0


@pytest.mark.parametrize("name", NAMES)
def test_same_verdict_as_git(name: str) -> None:
    problem = branch_name_problem(name)
    assert (problem is None) == git_accepts(name), (name, problem)
    if problem is not None:
        assert problem.startswith(("it ", "its ", "'")), problem


def test_the_platform_refuses_what_git_would_store_but_no_branch_should_be() -> None:
    assert branch_name_problem("HEAD") is not None and branch_name_problem("@") is not None  # git: shorthands
    assert branch_name_problem("b" * MAX_BRANCH_BYTES) is None
    long = "b" * (MAX_BRANCH_BYTES + 1)
    assert git_accepts(long) and "bytes" in (branch_name_problem(long) or "")
    assert branch_name_problem("\udcff") == "it is not valid UTF-8"
