"""Small builders for pure core tests."""

from reconciler.core.model import Head
from reconciler.core.policy import Policy, load_policy
from reconciler.core.resources import read_text


def default_policy() -> Policy:
    return load_policy(read_text("policies", "default.yaml"))


def head(branch: str, commit: str = "a" * 40, blob: str | None = None, number: int | None = None) -> Head:
    if number is not None:
        return Head(f"refs/pull/{number}/head", f"pull/{number}", "pull_request", number, commit, 1_700_000_000, blob)
    return Head(f"refs/heads/{branch}", branch, "branch", None, commit, 1_700_000_000, blob)
