"""Phases of a long operation, reported to whoever runs it (an API job, a terminal) without passing a
callback through every layer: the runner installs a sink for its thread, the code says `phase(...)`."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_sink: ContextVar[Callable[[str], None] | None] = ContextVar("odooops_progress", default=None)


def phase(name: str) -> None:
    """Say which phase the current operation entered (a no-op when nobody listens)."""
    sink = _sink.get()
    if sink is not None:
        sink(name)


@contextmanager
def reporting(sink: Callable[[str], None]) -> Iterator[None]:
    token = _sink.set(sink)
    try:
        yield
    finally:
        _sink.reset(token)


def deploy_progress(env: str, step: str, status: str, detail: str) -> None:
    """An Applier progress callback that reports each deploy step as a phase."""
    if status == "start":
        phase(f"deploying {env}: {step}")
