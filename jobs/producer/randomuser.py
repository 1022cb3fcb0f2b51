"""Client of the randomuser.me API (`GET <url>?results=N[&seed=S&page=P]`).

Retries connection errors, timeouts, 429, 5xx and unusable bodies (truncated or not JSON, no
`results` list) with exponential backoff and jitter, waiting at least what `Retry-After` asks for.
When every attempt failed it logs one clear line and raises `ApiUnavailable`; the caller decides
to wait and try again, so a failing API never crashes the producer.
"""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import httpx
import structlog
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential_jitter

log = structlog.get_logger()

MAX_RESULTS = 5000


class ApiError(Exception):
    """One failed request that is worth retrying."""

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class ApiUnavailable(RuntimeError):
    """The API kept failing for every attempt."""


def parse_retry_after(value: str | None, now: Callable[[], datetime] = lambda: datetime.now(timezone.utc)) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP date), None if absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - now()).total_seconds())


class RandomUserClient:
    def __init__(
        self,
        url: str = "https://randomuser.me/api/",
        *,
        timeout: float = 30.0,
        attempts: int = 6,
        backoff_initial: float = 1.0,
        backoff_max: float = 60.0,
        retry_after_max: float = 300.0,
        seed: str | None = None,
        sleep: Callable[[float], None] = time.sleep,
        transport: httpx.BaseTransport | None = None,
    ):
        self.url = url
        self.seed = seed
        self._page = 0
        self._attempts = attempts
        self._sleep = sleep
        self._backoff = wait_exponential_jitter(multiplier=backoff_initial, max=backoff_max, jitter=backoff_initial)
        self._retry_after_max = retry_after_max
        self._http = httpx.Client(timeout=httpx.Timeout(timeout, connect=min(10.0, timeout)), transport=transport,
                                  headers={"Accept": "application/json", "User-Agent": "userpipeline-producer"})

    def close(self) -> None:
        self._http.close()

    def _wait(self, state: RetryCallState) -> float:
        delay = self._backoff(state)
        exc = state.outcome.exception() if state.outcome else None
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is not None:
            delay = max(delay, min(retry_after, self._retry_after_max))
        return delay

    def _before_sleep(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        log.warning("producer.api_retry", attempt=state.attempt_number, of=self._attempts, error=str(exc),
                    wait_seconds=round(state.next_action.sleep, 2) if state.next_action else None)

    def fetch(self, results: int) -> list[Any]:
        """One batch of users (the API's `results` list); raises ApiUnavailable after all attempts."""
        if not 1 <= results <= MAX_RESULTS:
            raise ValueError(f"results must be between 1 and {MAX_RESULTS}, got {results}")
        params: dict[str, Any] = {"results": results}
        if self.seed is not None:  # a seed repeats the same users: walk the pages instead
            self._page += 1
            params.update(seed=self.seed, page=self._page)
        retrying = Retrying(
            stop=stop_after_attempt(self._attempts),
            wait=self._wait,
            retry=retry_if_exception_type(ApiError),
            sleep=self._sleep,
            before_sleep=self._before_sleep,
            reraise=True,
        )
        try:
            return retrying(self._request, params)
        except ApiError as exc:
            log.error("producer.api_unavailable", url=self.url, attempts=self._attempts, last_error=str(exc),
                      hint="the API keeps failing; the producer waits and tries again")
            raise ApiUnavailable(f"{self.url} failed {self._attempts} times in a row, last: {exc}") from exc

    def _request(self, params: dict[str, Any]) -> list[Any]:
        try:
            response = self._http.get(self.url, params=params)
        except httpx.TransportError as exc:  # connection refused/reset, timeouts, truncated chunked bodies
            raise ApiError(f"{type(exc).__name__}: {exc}") from exc
        if response.status_code == 429 or response.status_code >= 500:
            raise ApiError(f"HTTP {response.status_code}", parse_retry_after(response.headers.get("Retry-After")))
        if response.status_code != 200:
            raise ApiUnavailable(f"{self.url} answered HTTP {response.status_code}; check source.url in the spec")
        return _results(response.content)


def _results(body: bytes) -> list[Any]:
    try:
        document = json.loads(body)
    except ValueError as exc:
        raise ApiError(f"unusable body ({len(body)} bytes): {exc}") from exc
    results = document.get("results") if isinstance(document, dict) else None
    if not isinstance(results, list):
        detail = document.get("error") if isinstance(document, dict) else None
        raise ApiError(f"body has no 'results' list{f': {detail}' if detail else ''}")
    return results
