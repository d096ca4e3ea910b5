"""A webhook hint: which branches a valid delivery says changed, for the daemon to look at first."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Hint:
    """What a valid delivery says: something changed on these branches (or tags, ignored)."""

    provider: str
    event: str
    delivery: str
    branches: tuple[str, ...]
    action: str | None = None
    received_at: float = 0.0
    # The request's head commit the event names (pull/merge request events): the daemon acts on an
    # open/close only once the mirror's refs/pull/N/head is at this commit.
    head: str | None = None
