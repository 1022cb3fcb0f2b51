"""Poll for a condition instead of sleeping: tests wait exactly as long as the system needs."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def wait_for(condition: Callable[[], T], timeout: float = 30, what: str = "", interval: float = 0.2) -> T:
    """Call `condition` until it returns something truthy and return that; fail with the last value."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = condition()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what or condition}; last value: {last!r}")
