"""Polling instead of sleeping, for the dashboard tests and benchmark."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def wait_for(condition: Callable[[], Any], timeout: float, what: str, interval: float = 0.1) -> Any:
    """Poll `condition` until it returns something truthy; fail with `what` after `timeout` seconds.

    AssertionErrors raised by the condition are final (the thing polled is gone); other errors are retried.
    """
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if result := condition():
                return result
        except AssertionError:
            raise
        except Exception as error:  # noqa: BLE001 - polled conditions may fail until ready
            last_error = error
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}" + (f" (last error: {last_error})" if last_error else ""))
