"""Where records come from, behind one small interface the runner polls without blocking."""

from __future__ import annotations

import dataclasses
import threading
from collections import deque
from typing import Any, Protocol

import structlog

from userpipeline.jobs.producer.progress import API_FAILURES
from userpipeline.jobs.producer.randomuser import ApiUnavailable, RandomUserClient
from userpipeline.jobs.producer.synthetic import SyntheticSource, dumps, utc_today

log = structlog.get_logger()

Item = tuple[int, "dict[str, Any] | bytes"]


class Feed(Protocol):
    exhausted: bool

    def take(self) -> Item | None:
        """The next record, or None if none is ready yet (or the feed is exhausted)."""

    def close(self) -> None: ...


class SyntheticFeed:
    def __init__(self, source: SyntheticSource, start: int = 0, stop: int | None = None):
        self._source = source
        self._next = start
        self._stop = stop
        self.exhausted = stop is not None and start >= stop

    def take(self) -> Item | None:
        if self.exhausted:
            return None
        if self._next % 1000 == 0 and self._source.today != utc_today():
            # A long run follows the calendar, so dob.age stays true like the API's (ages move on birthdays).
            self._source = dataclasses.replace(self._source, today=utc_today())
        index = self._next
        self._next += 1
        self.exhausted = self._stop is not None and self._next >= self._stop
        return index, self._source.record(index).payload

    def close(self) -> None:
        pass


class RandomUserFeed:
    """Fetches batches in a background thread so the runner keeps serving Kafka callbacks and signals."""

    def __init__(self, client: RandomUserClient, batch_size: int, stop: int | None = None, *, cooldown: float = 30.0,
                 closed: threading.Event | None = None):
        self.batch_size = batch_size
        self.exhausted = False
        self._client = client
        self._stop = stop
        self._cooldown = cooldown
        self._taken = 0
        self._items: deque[Any] = deque()
        self._closed = closed or threading.Event()  # share it with the client's sleep to stop retries early
        self._thread = threading.Thread(target=self._run, name="randomuser-feed", daemon=True)
        self._thread.start()

    def _wanted(self) -> int:
        left = self.batch_size if self._stop is None else self._stop - self._taken - len(self._items)
        return min(self.batch_size, left)

    def _run(self) -> None:
        while not self._closed.is_set():
            wanted = self._wanted()
            if wanted <= 0 or len(self._items) >= self.batch_size:
                self._closed.wait(0.05)
                continue
            try:
                self._items.extend(self._client.fetch(wanted))
            except ApiUnavailable as exc:
                API_FAILURES.inc()
                log.error("producer.api_batch_failed", error=str(exc), retry_in_seconds=self._cooldown)
                self._closed.wait(self._cooldown)
            except Exception as exc:  # noqa: BLE001 - the feed thread must survive anything the API does
                log.error("producer.api_feed_error", error=f"{type(exc).__name__}: {exc}", retry_in_seconds=self._cooldown)
                self._closed.wait(self._cooldown)

    def take(self) -> Item | None:
        if self.exhausted or not self._items:
            return None
        user = self._items.popleft()
        index = self._taken
        self._taken += 1
        self.exhausted = self._stop is not None and self._taken >= self._stop
        return index, user if isinstance(user, dict) else dumps(user).encode()

    def close(self) -> None:
        self._closed.set()
        self._client.close()
