"""Pull and merge requests: which events change whether one is open, and how their refs are named."""

from __future__ import annotations

# Actions (GitHub/Gitea pull_request, GitLab merge_request) that say a request was closed or opened.
CLOSING = frozenset({"closed", "close", "merged", "merge"})
REOPENING = frozenset({"reopened", "reopen", "opened", "open"})
STATE_ACTIONS = CLOSING | REOPENING
PREFIXES = ("pull/", "merge-requests/")


def is_change_request(branch: str) -> bool:
    """True for the planner's pull/N and merge-requests/N heads."""
    return branch.startswith(PREFIXES)


def head_ref(branch: str) -> str:
    """The ref the mirror fetches for a request head: pull/7 -> refs/pull/7/head."""
    return f"refs/{branch}/head"
