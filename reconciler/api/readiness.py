"""GET /readyz's host checks (`odooops doctor`'s), run at most once per few seconds whatever the probe rate."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from reconciler.errors import OdooOpsError
from reconciler.service.doctor import FAIL, CheckResult

DEFAULT_TTL_S = 5.0


class CheckBody(BaseModel):
    id: str
    status: str  # ok | warn | fail | skipped
    detail: str
    fix: str
    duration_ms: int


class ReadyBody(BaseModel):
    status: str
    checks: list[CheckBody]


class NotReadyBody(BaseModel):
    error: str
    message: str
    remediation: str
    docs: str
    request_id: str | None = None
    checks: list[CheckBody] = []


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


def verdict(results: list[CheckResult]) -> tuple[dict[str, Any] | None, OdooOpsError | None]:
    """(the 200 body, None) when no check failed, else (None, the 503 error carrying every check)."""
    checks = [r.to_json() for r in results]
    bad = [r.id for r in results if r.status == FAIL]
    if not bad:
        return {"status": "ready", "checks": checks}, None
    return None, OdooOpsError("HOST_CHECK_FAILED", f"host checks failed: {', '.join(bad)}",
                              "follow each failed check's fix (odooops doctor on the server's host shows the same)",
                              {"checks": checks})
