"""Where records come from, behind one small interface the runner polls without blocking."""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import signal
import threading
import time
from collections import deque
from multiprocessing.pool import AsyncResult
from typing import Any, Protocol

import structlog

from userpipeline.jobs.producer.progress import API_FAILURES
from userpipeline.jobs.producer.randomuser import ApiUnavailable, RandomUserClient
from userpipeline.jobs.producer.sanitize import Message, to_message
from userpipeline.jobs.producer.synthetic import SyntheticSource, dumps, utc_today

log = structlog.get_logger()

Item = tuple[int, "dict[str, Any] | bytes | Message"]  # a Message is already sanitised


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
        return index, self._source.record(index, lean=True).payload  # the same message, less work

    def close(self) -> None:
        pass


def _messages(source: SyntheticSource, start: int, stop: int) -> list[Message]:
    """Worker side: records start..stop-1, sanitised (only bytes cross the process boundary)."""
    return [to_message(source.record(index, lean=True).payload) for index in range(start, stop)]


def _worker_init(producer_pid: int) -> None:
    # Ctrl-C reaches the whole process group: the producer handles it and closes the pool (with SIGTERM).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_exit_with, args=(producer_pid,), name="producer-watch", daemon=True).start()


def _exit_with(producer_pid: int) -> None:
    """End this worker once the producer is gone, even SIGKILLed (the pool's pipes do not tell it)."""
    while os.getppid() == producer_pid:
        time.sleep(0.5)
    os._exit(0)


class ParallelSyntheticFeed:
    """SyntheticFeed's records, generated and sanitised by `workers` processes, `chunk` indexes per task.

    Generation is most of the producer's CPU (docs/performance.md): in worker processes it runs beside the
    Kafka client instead of in its thread. Items come in index order, already as Messages; at most `ahead`
    chunks wait, so memory stays bounded whatever Kafka's pace. A worker ends with the producer, even
    after a SIGKILL.
    """

    def __init__(self, source: SyntheticSource, start: int = 0, stop: int | None = None, *, workers: int = 1,
                 chunk: int = 1000, ahead: int | None = None):
        self._source = source
        self._stop = stop
        self._chunk = chunk
        self._ahead = ahead or 2 * workers + 1
        self._next_task = start
        self._pending: deque[tuple[int, AsyncResult[list[Message]]]] = deque()
        self._items: deque[Item] = deque()
        self.exhausted = stop is not None and start >= stop
        self.stuck_after = 120.0
        self._waiting_since: float | None = None
        self._pool = multiprocessing.get_context("spawn").Pool(workers, initializer=_worker_init, initargs=(os.getpid(),))
        self._submit()

    def _submit(self) -> None:
        while len(self._pending) < self._ahead and (self._stop is None or self._next_task < self._stop):
            if self._source.today != utc_today():  # a long run follows the calendar, as SyntheticFeed does
                self._source = dataclasses.replace(self._source, today=utc_today())
            end = self._next_task + self._chunk if self._stop is None else min(self._stop, self._next_task + self._chunk)
            self._pending.append((self._next_task, self._pool.apply_async(_messages, (self._source, self._next_task, end))))
            self._next_task = end

    def take(self) -> Item | None:
        if self.exhausted:
            return None
        if not self._items:
            if not self._pending or not self._pending[0][1].ready():
                self._check_progress()
                return None
            first, result = self._pending.popleft()
            self._waiting_since = None
            self._items.extend(enumerate(result.get(), first))  # raises what the worker raised
            self._submit()
        index, message = self._items.popleft()
        self.exhausted = self._stop is not None and index + 1 >= self._stop
        return index, message

    def _check_progress(self) -> None:
        """A chunk takes milliseconds: one that never comes means its worker died (the pool replaces the
        process, not its task)."""
        now = time.monotonic()
        if self._waiting_since is None:
            self._waiting_since = now
        elif now - self._waiting_since > self.stuck_after:
            raise RuntimeError(f"no synthetic records from the generator workers for {self.stuck_after:.0f}s "
                               "(a worker was killed, e.g. out of memory?); restart the producer, it resumes where it was")

    def close(self) -> None:
        self._pool.terminate()
        self._pool.join()


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
