"""Token bucket for `spec.producer.ratePerSecond`, with `paused`; the clock is injectable for tests."""

from __future__ import annotations

import math
import time
from collections.abc import Callable


class TokenBucket:
    """Allows `rate` records per second on average, bursts up to `burst` (default: 0.1 s worth, at least 2)."""

    def __init__(self, rate: float, *, paused: bool = False, burst: float | None = None, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._explicit_burst = burst
        self._tokens = 0.0
        self._stamp = clock()
        self.rate = 0.0
        self.burst = 1.0
        self.paused = paused
        self.configure(rate, paused=paused)

    def configure(self, rate: float, *, paused: bool) -> None:
        """Apply a new rate and pause flag; tokens earned so far are kept, capped to the new burst."""
        self._refill()
        self.rate = max(0.0, float(rate))
        self.paused = paused
        self.burst = self._explicit_burst or max(2.0, self.rate / 10)
        self._tokens = min(self._tokens, self.burst)

    def _refill(self) -> None:
        now = self._clock()
        if not self.paused:
            self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now

    def take(self, wanted: int = 1) -> int:
        """Take up to `wanted` whole tokens now; returns how many were granted (0 when none)."""
        self._refill()
        if self.paused:
            return 0
        granted = min(wanted, int(self._tokens + 1e-9))  # tolerate float drift
        self._tokens -= granted
        return granted

    def refund(self, unused: int) -> None:
        """Give back tokens taken but not used (e.g. the source had nothing ready)."""
        self._tokens = min(self.burst, self._tokens + unused)

    def wait_time(self) -> float:
        """Seconds until the next token (inf while paused or at rate 0)."""
        self._refill()
        if self.paused or self.rate <= 0:
            return math.inf
        return max(0.0, (1 - self._tokens) / self.rate)
