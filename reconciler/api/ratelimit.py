"""Rate limiting with token buckets (per token; failed authentication per client address); 429 with Retry-After."""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from reconciler.api.errors import ApiError
from reconciler.errors import OdooOpsError

_UNITS = {"s": 1.0, "sec": 1.0, "second": 1.0, "m": 60.0, "min": 60.0, "minute": 60.0, "h": 3600.0,
          "hour": 3600.0}


def parse_rate(text: str) -> tuple[float, float]:
    """'20/s', '600/min', '5000/h' or a bare number (per second) -> (tokens per second, burst)."""
    count, _, unit = text.strip().partition("/")
    try:
        n = float(count)
    except ValueError:
        n = -1.0
    per = _UNITS.get(unit.strip().lower() or "s")
    if n <= 0 or per is None or not math.isfinite(n):
        raise OdooOpsError("USAGE", f"--rate-limit {text!r} is not RATE/UNIT",
                           "pass e.g. --rate-limit 20/s, 600/min or 5000/h")
    # The burst is one unit's worth, capped so that a per-hour budget cannot be spent in one second.
    return n / per, max(1.0, min(n, max(10.0, 2 * n / per)))


class RateLimiter:
    """Token buckets keyed by caller; bounded memory (least recently seen buckets are dropped)."""

    def __init__(self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic,
                 max_keys: int = 10_000) -> None:
        self.rate = rate
        self.burst = burst
        self.clock = clock
        self.max_keys = max_keys
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, key: str) -> float:
        """0.0 when a request may proceed, else the seconds until one token is available."""
        now = self.clock()
        with self._lock:
            tokens, last = self._buckets.pop(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                wait = 0.0
            else:
                self._buckets[key] = (tokens, now)
                wait = (1.0 - tokens) / self.rate
            while len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
        return wait

    def peek(self, key: str) -> float:
        """Like take, without spending: 0.0 when a token is available, else the seconds until one is."""
        now = self.clock()
        with self._lock:
            tokens, last = self._buckets.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        return 0.0 if tokens >= 1.0 else (1.0 - tokens) / self.rate

    def check(self, key: str) -> None:
        wait = self.take(key)
        if wait > 0:
            raise limited(wait)


def limited(wait: float, code: str = "RATE_LIMITED", what: str = "too many requests for this token",
            option: str = "--rate-limit") -> ApiError:
    """429 with Retry-After (whole seconds, at least 1)."""
    retry = max(1, math.ceil(wait))
    return ApiError(code, f"{what}; retry in {retry}s",
                    f"wait {retry}s (Retry-After), or ask the operator to raise odooops serve {option}",
                    status=429, headers={"Retry-After": str(retry)})
