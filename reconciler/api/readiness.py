"""GET /readyz's host checks (`odooops doctor`'s), run at most once per few seconds whatever the probe rate,
and what of them a client is shown: every check's id and status, the rest to local clients only."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from reconciler.errors import OdooOpsError
from reconciler.service.doctor import FAIL, CheckResult

DEFAULT_TTL_S = 5.0


class CheckStatus(BaseModel):
    """A check as every client sees it."""

    id: str
    status: str  # ok | warn | fail | skipped


class CheckBody(CheckStatus):
    """A check as a local client sees it: what it found (addresses, versions, drivers) and the fix."""

    detail: str
    fix: str
    duration_ms: int


# The details go to local clients only (the host, or a client a --trusted-proxy names): to anyone else
# PostgreSQL's address and version or Docker's storage driver are reconnaissance.
Checks = list[CheckBody | CheckStatus]


class ReadyBody(BaseModel):
    status: str
    checks: Checks


class NotReadyBody(BaseModel):
    error: str
    message: str
    remediation: str
    docs: str
    request_id: str | None = None
    checks: Checks = []


class CachedChecks:
    """One run of the checks serves every probe for `ttl_s`; probes arriving during a run wait for it
    instead of starting their own, so a probe flood costs PostgreSQL one session per `ttl_s`."""

    def __init__(self, run: Callable[[], list[CheckResult]], ttl_s: float = DEFAULT_TTL_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._run = run
        self.ttl_s = ttl_s
        self._clock = clock
        self._lock = threading.Lock()
        self._at: float | None = None
        self._results: list[CheckResult] = []
        self.runs = 0

    def get(self) -> list[CheckResult]:
        with self._lock:
            if self._at is None or self._clock() - self._at >= self.ttl_s:
                self._results = self._run()
                self._at = self._clock()
                self.runs += 1
            return self._results


def verdict(results: list[CheckResult], details: bool) -> tuple[dict[str, Any] | None, OdooOpsError | None]:
    """(the 200 body, None) when no check failed, else (None, the 503 error carrying every check); each
    check with its detail, fix and duration when `details`, else its id and status only."""
    checks = [r.to_json() if details else {"id": r.id, "status": r.status} for r in results]
    bad = [r.id for r in results if r.status == FAIL]
    if not bad:
        return {"status": "ready", "checks": checks}, None
    return None, OdooOpsError("HOST_CHECK_FAILED", f"host checks failed: {', '.join(bad)}",
                              "run odooops doctor on the server's host and follow each failed check's fix "
                              "(a local client of /readyz gets them too)",
                              {"checks": checks})
