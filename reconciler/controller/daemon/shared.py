"""What the daemon's parts share: its settings, the applier seam, the state store its workers write."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

from reconciler.controller.planning import PlanOutcome
from reconciler.controller.workqueue import Backoff
from reconciler.core.model import ActionKind
from reconciler.platform.state_store import StateStore

ACTIVE = (ActionKind.CREATE, ActionKind.UPDATE, ActionKind.REDEPLOY, ActionKind.DESTROY)
MAX_HINTED = 1024  # distinct hinted branches kept between two polls; beyond, the poll covers all anyway


class ApplierLike(Protocol):
    def apply(self, outcome: PlanOutcome) -> Any: ...


def daemon_backoff() -> Backoff:
    """How a failed reconcile is retried: 5 s doubling up to 5 minutes, 8 attempts."""
    return Backoff(base=5.0, cap=300.0, max_attempts=8)


@dataclass(frozen=True)
class DaemonConfig:
    repo: str
    state_dir: Path
    poll_interval: float = 60.0
    max_concurrent: int = 10
    policy_file: Path | None = None
    sweep_interval: float = 300.0  # orphans, runtime drift, resubmission of unconverged work
    jitter: float = 0.2  # +-20% on the poll interval, so many daemons do not poll in step
    min_poll_gap: float = 0.05  # a webhook flood costs at most one poll per gap
    backoff: Backoff = field(default_factory=daemon_backoff)
    backup_tick: float = 60.0  # seconds between two looks at the environments' backup schedules
    # How long an open/close event whose head commit the mirror does not have (yet) stays pending:
    # the provider may move refs/pull/N/head a moment after it sends the event.
    request_event_wait: float = 300.0
    project: str | None = None  # the project's name (--project), None: the installation's unnamed legacy one


NOTES_RETRY_MAX_S = 8.0


class SharedStateStore(StateStore):
    """The state store with one in-process lock per path. Each StateStore write is its own
    transaction; the lock lets a caller make several reads and writes of the whole store atomic
    with the daemon's workers (tests seed entries that way)."""

    _locks: ClassVar[dict[str, threading.RLock]] = {}
    _guard = threading.Lock()

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        with self._guard:
            self._lock = self._locks.setdefault(str(path.resolve()), threading.RLock())

    def record(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        with self._lock:
            return super().record(*args, **kwargs)

    def set_state(self, *args: Any, **kwargs: Any) -> None:
        with self._lock:
            super().set_state(*args, **kwargs)

    def forget(self, name: str) -> None:
        with self._lock:
            super().forget(name)
