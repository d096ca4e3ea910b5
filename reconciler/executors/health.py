"""Poll Odoo's `GET /web/health` until it passes or a deadline expires, and say what was seen."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import httpx

from reconciler.errors import OdooOpsError

HEALTH_PATH = "/web/health"


@dataclass(frozen=True)
class HealthResult:
    url: str
    healthy: bool
    attempts: int
    elapsed_s: float  # from the first request to the verdict
    time_to_healthy_s: float | None
    last_status: int | None
    last_body: str | None  # at most 500 characters
    last_error: str | None  # connection error or why a 200 did not count

    def raise_if_unhealthy(self, env: str = "") -> None:
        if self.healthy:
            return
        seen = f"HTTP {self.last_status}" if self.last_status else (self.last_error or "nothing")
        raise OdooOpsError(
            "HEALTH_TIMEOUT", f"{env or self.url} did not pass {HEALTH_PATH} within "
            f"{self.elapsed_s:.1f}s after {self.attempts} attempts (last: {seen})",
            f"odooops logs {env} --role web" if env else f"curl -v {self.url}",
            {"url": self.url, "last_status": self.last_status, "last_error": self.last_error})


def health_url(url: str, check_db: bool = False) -> str:
    """`http://h:p` -> `http://h:p/web/health`; a URL already ending in it is kept."""
    base = url.rstrip("/")
    full = base if base.endswith(HEALTH_PATH) else base + HEALTH_PATH
    return full + ("?db_server_status=1" if check_db else "")


def passes(status: int, body: bytes) -> tuple[bool, str | None]:
    """Odoo is up only for 200 with JSON `{"status": "pass"}`; any other answer says why not."""
    if status != 200:
        return False, f"HTTP {status}"
    try:
        doc = json.loads(body)
    except ValueError:
        return False, "200 but the body is not JSON"
    if not isinstance(doc, dict) or doc.get("status") != "pass":
        return False, "200 but status is not \"pass\""
    return True, None


def wait_healthy(url: str, host_header: str | None = None, timeout_s: float = 60.0,
                 interval_s: float = 0.25, check_db: bool = False) -> HealthResult:
    """Poll until healthy or the deadline; each request's own timeout never crosses the deadline."""
    target = health_url(url, check_db)
    headers = {"Host": host_header} if host_header else {}
    start = time.monotonic()
    deadline = start + timeout_s
    attempts = 0
    status: int | None = None
    body: str | None = None
    error: str | None = None
    # trust_env=False: health checks target loopback and must not go through a proxy.
    with httpx.Client(trust_env=False, follow_redirects=False) as client:
        while True:
            attempts += 1
            attempt_start = time.monotonic()
            remaining = deadline - attempt_start
            try:
                resp = client.get(target, headers=headers, timeout=max(min(remaining, 10.0), 0.05))
                status, body = resp.status_code, resp.text[:500]
                ok, error = passes(resp.status_code, resp.content)
                if ok:
                    now = time.monotonic()
                    return HealthResult(target, True, attempts, now - start, now - start,
                                        status, body, None)
            except httpx.HTTPError as exc:
                status, body, error = None, None, f"{type(exc).__name__}: {exc}"
            now = time.monotonic()
            if now >= deadline:
                return HealthResult(target, False, attempts, now - start, None, status, body, error)
            # Sleep out the rest of the interval, but never past the deadline.
            time.sleep(max(0.0, min(attempt_start + interval_s, deadline) - now))
