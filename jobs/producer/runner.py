"""The producer's main loop: feed -> sanitize -> rate limit -> Kafka, with live spec changes and progress."""

from __future__ import annotations

import functools
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import structlog
from confluent_kafka import KafkaException

from userpipeline.jobs.endpoints import Endpoints
from userpipeline.jobs.producer import progress as metrics
from userpipeline.jobs.producer import resume
from userpipeline.jobs.producer.feeds import Feed, ParallelSyntheticFeed, RandomUserFeed, SyntheticFeed
from userpipeline.jobs.producer.progress import AckLog, Progress, Watermark
from userpipeline.jobs.producer.publisher import (
    Ack,
    DeliveryError,
    Publisher,
    ensure_topics,
    producer_config,
    wait_for_topic,
)
from userpipeline.jobs.producer.randomuser import RandomUserClient
from userpipeline.jobs.producer.rate import TokenBucket
from userpipeline.jobs.producer.sanitize import Message, to_message
from userpipeline.jobs.producer.spec_watch import SpecWatcher
from userpipeline.jobs.producer.synthetic import SyntheticSource
from userpipeline.operator.spec.model import UserPipelineSpec

log = structlog.get_logger()

CHUNK = 500  # records sent between two polls of the Kafka client
MAX_IN_FLIGHT = 50_000  # backpressure: past this many unacknowledged records, wait instead of queueing more


@dataclass
class Options:
    spec_path: Path
    source: str | None = None  # overrides spec.source.type
    count: int | None = None  # stop once this many records are acknowledged (synthetic: indexes 0..count-1)
    progress_file: Path | None = None
    acked_log: Path | None = None
    resume: bool = True  # synthetic: continue after the last contiguous acknowledged index
    report_every: float = 5.0
    flush_timeout: float = 25.0  # below Kubernetes' default 30 s grace period
    spec_poll_interval: float = 1.0
    # Records outstanding with no delivery report at all for this long: warn (and say so in the progress file).
    stall_warning_after: float = 15.0
    # ... for this long, and the cluster has answered with a leader for every partition for `stall_recovery_grace`
    # seconds (time for the client to reconnect on its own after a broker restart): replace the client.
    stall_recovery_after: float = 45.0
    stall_recovery_grace: float = 20.0
    # Synthetic source: processes generating and sanitising records beside the Kafka client (0: in its thread).
    workers: int = 1


class Runner:
    def __init__(self, options: Options, endpoints: Endpoints):
        self.options = options
        self.endpoints = endpoints
        self.stopping = threading.Event()
        self.watcher = SpecWatcher(options.spec_path, interval=options.spec_poll_interval)
        self.spec: UserPipelineSpec = self.watcher.current.spec
        self.source = options.source or self.spec.source.type.value
        self.progress = self._initial_progress()
        self.base = Progress(**vars(self.progress))  # totals of earlier runs
        self.watermark = Watermark(self.progress.nextIndex)
        self.ack_log = AckLog(options.acked_log)
        self.bucket = TokenBucket(self.spec.producer.rate_per_second, paused=self.spec.producer.paused)
        self._counted = (0, 0)  # acked, failed already added to the Prometheus counters
        self._warned_at = 0.0  # seconds_without_acks when the last stall warning was logged
        self._ready_since: float | None = None  # since when the cluster answers while records still wait

    def _initial_progress(self) -> Progress:
        seed = self.spec.source.seed if self.source == "synthetic" else None
        previous = Progress.load(self.options.progress_file)
        if self.options.resume and previous and previous.source == self.source == "synthetic" and previous.seed == seed:
            previous.state = "starting"
            return previous
        return Progress(source=self.source, seed=seed)

    def _resume_from_topic(self) -> None:
        """Without a progress file to resume from (a new pod), continue after what the topic already holds."""
        if self.progress.nextIndex or not self.options.resume:
            return
        start = resume.next_index_in_topic(self.endpoints.kafka_bootstrap, self.spec.topic.name, self.spec.source.seed)
        if start:
            log.info("producer.resumed_from_topic", topic=self.spec.topic.name, start_index=start)
            self.progress.nextIndex = start
            self.watermark = Watermark(start)

    # -- wiring ----------------------------------------------------------------------------------

    def _feed(self) -> Feed:
        src = self.spec.source
        if self.source == "synthetic":
            generator = SyntheticSource(seed=src.seed, minor_ratio=src.minor_ratio, broken_ratio=src.broken_ratio)
            # Resumed runs continue the same index range: `count` is the total of indexes 0..count-1.
            if self.options.workers > 0:
                return ParallelSyntheticFeed(generator, self.progress.nextIndex, self.options.count, workers=self.options.workers)
            return SyntheticFeed(generator, self.progress.nextIndex, self.options.count)
        client = RandomUserClient(src.url, sleep=self.stopping.wait)
        return RandomUserFeed(client, src.batch_size, self.options.count, closed=self.stopping)

    def _on_ack(self, ack: Ack) -> None:
        self.watermark.ack(ack.index)
        self.ack_log.write(ack.index, ack.key)

    def install_signal_handlers(self) -> None:
        def stop(signum: int, _frame: FrameType | None) -> None:
            log.info("producer.stop_requested", signal=signal.Signals(signum).name)
            self.stopping.set()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)

    # -- loop ------------------------------------------------------------------------------------

    def run(self) -> int:
        """Publish until the feed is exhausted or a stop signal; 0 when every record was acknowledged."""
        try:
            if self.endpoints.manage_topics:
                ensure_topics(self.endpoints.kafka_bootstrap, self.spec)
            else:
                wait_for_topic(self.endpoints.kafka_bootstrap, self.spec.topic.name, self.stopping)
        except KafkaException as exc:
            log.error("producer.kafka_unreachable", bootstrap=self.endpoints.kafka_bootstrap, error=str(exc),
                      hint="start Kafka or fix USERPIPELINE_KAFKA_BOOTSTRAP, then restart the producer")
            return 1
        if self.stopping.is_set():
            self.progress.state = "stopped"
            self.progress.write(self.options.progress_file)
            return 0
        headers = None
        if self.source == "synthetic":
            self._resume_from_topic()
            headers = functools.partial(resume.header, self.spec.source.seed)
        publisher = Publisher(producer_config(self.endpoints.kafka_bootstrap), self.spec.topic.name, on_ack=self._on_ack,
                              headers=headers)
        feed = self._feed()
        log.info("producer.started", source=self.source, topic=self.spec.topic.name, start_index=self.progress.nextIndex,
                 count=self.options.count, rate_per_second=self.bucket.rate, paused=self.bucket.paused)
        self._update_progress(publisher)
        try:
            self._loop(feed, publisher)
            publisher.flush(self.options.flush_timeout)
            self.progress.state = "stopped" if self.stopping.is_set() else "done"
            return 0
        except DeliveryError as exc:
            log.error("producer.delivery_incomplete", error=str(exc))
            self.progress.state = "failed"
            return 1
        except BaseException:
            self.progress.state = "failed"
            raise
        finally:
            feed.close()
            self._update_progress(publisher)
            self.ack_log.close()
            log.info("producer.stopped", state=self.progress.state, produced=publisher.produced,
                     acked=publisher.acked, failed=publisher.failed, next_index=self.progress.nextIndex)

    def _loop(self, feed: Feed, publisher: Publisher) -> None:
        last_report = last_write = time.monotonic()
        acked_at_report = 0
        while not self.stopping.is_set() and not (feed.exhausted and publisher.outstanding == 0):
            self._apply_spec_changes()
            sent = self._send_some(feed, publisher)
            publisher.poll(0 if sent else min(0.1, max(0.01, self.bucket.wait_time())))
            now = time.monotonic()
            if now - last_write >= 1.0:
                self._watch_acks(publisher)
                self._update_progress(publisher)
                last_write = now
            if now - last_report >= self.options.report_every:
                rate = (publisher.acked - acked_at_report) / (now - last_report)
                log.info("producer.progress", produced=publisher.produced, acked=publisher.acked, failed=publisher.failed,
                         outstanding=publisher.outstanding, acked_per_second=round(rate, 1),
                         rate_per_second=self.bucket.rate, paused=self.bucket.paused)
                last_report, acked_at_report = now, publisher.acked

    def _watch_acks(self, publisher: Publisher) -> None:
        """Say so when records wait without acknowledgements; replace the client if it stopped reporting."""
        waiting = publisher.seconds_without_acks()
        if waiting < self.options.stall_warning_after:
            self._warned_at, self._ready_since = 0.0, None
            return
        if waiting - self._warned_at >= self.options.stall_warning_after:
            self._warned_at = waiting
            log.warning("producer.acks_stalled", outstanding=publisher.outstanding, seconds_without_acks=round(waiting),
                        oldest_unacked_seconds=round(publisher.oldest_unacked_seconds()),
                        hint="check Kafka (`userpipeline status`, its log); the records are kept and retried")
        if waiting >= self.options.stall_recovery_after:
            self._recover_if_cluster_ready(publisher)

    def _recover_if_cluster_ready(self, publisher: Publisher) -> None:
        """Replace the client only once Kafka has answered for a while: a broker still down is no client fault."""
        if not publisher.cluster_ready():
            self._ready_since = None
            return
        now = time.monotonic()
        if self._ready_since is None:
            self._ready_since = now
        if now - self._ready_since >= self.options.stall_recovery_grace:
            publisher.recover()
            self._warned_at, self._ready_since = 0.0, None

    def _send_some(self, feed: Feed, publisher: Publisher) -> int:
        room = min(CHUNK, MAX_IN_FLIGHT - publisher.outstanding)
        if feed.exhausted or room <= 0:
            return 0
        granted = self.bucket.take(room)
        sent = 0
        while sent < granted:
            item = feed.take()
            if item is None:
                break
            index, payload = item
            publisher.send(index, payload if isinstance(payload, Message) else to_message(payload))
            sent += 1
        self.bucket.refund(granted - sent)
        metrics.PRODUCED.inc(sent)
        return sent

    def _apply_spec_changes(self) -> None:
        pipeline = self.watcher.poll()
        if pipeline is None:
            return
        new, old = pipeline.spec, self.spec
        self.bucket.configure(new.producer.rate_per_second, paused=new.producer.paused)
        log.info("producer.spec_applied", rate_per_second=new.producer.rate_per_second, paused=new.producer.paused)
        if new.model_dump(exclude={"producer"}) != old.model_dump(exclude={"producer"}):
            log.warning("producer.spec_change_needs_restart", hint="only producer.ratePerSecond and producer.paused apply live")
        self.spec = old.model_copy(update={"producer": new.producer})

    def _publish_gauges(self, publisher: Publisher) -> None:
        metrics.RATE.set(self.bucket.rate)
        metrics.PAUSED.set(1 if self.bucket.paused else 0)
        metrics.OUTSTANDING.set(publisher.outstanding)

    def _update_progress(self, publisher: Publisher) -> None:
        p = self.progress
        p.produced = self.base.produced + publisher.produced
        p.acked = self.base.acked + publisher.acked
        p.failed = self.base.failed + publisher.failed
        metrics.ACKED.inc(publisher.acked - self._counted[0])
        metrics.FAILED.inc(publisher.failed - self._counted[1])
        self._counted = (publisher.acked, publisher.failed)
        p.nextIndex = self.watermark.next
        p.outstanding = publisher.outstanding
        p.oldestUnackedSeconds = round(publisher.oldest_unacked_seconds(), 1)
        p.secondsWithoutAcks = round(publisher.seconds_without_acks(), 1)
        p.clientRecoveries = self.base.clientRecoveries + publisher.recoveries
        p.ratePerSecond = self.bucket.rate
        p.paused = self.bucket.paused
        if p.state in ("starting", "running", "paused"):
            p.state = "paused" if self.bucket.paused else "running"
        p.write(self.options.progress_file)
        self._publish_gauges(publisher)
