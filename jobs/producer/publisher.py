"""Kafka side of the producer: topics, an idempotent acks=all producer, and every delivery accounted for.

A delivery either reaches its callback as acknowledged, or as an error. Retriable errors (librdkafka
already retried them until `delivery.timeout.ms`) are re-queued up to `max_requeues` times; anything
else is counted in `failed`, logged, and raised by `flush()`. Nothing is dropped silently.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import structlog
from confluent_kafka import KafkaError, KafkaException, Message as KafkaMessage, Producer
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, NewTopic, ResourceType
from tenacity import retry, retry_if_exception, stop_after_delay, wait_exponential_jitter

from userpipeline.jobs.producer.sanitize import Message
from userpipeline.operator.spec.durations import parse_duration
from userpipeline.operator.spec.model import UserPipelineSpec

log = structlog.get_logger()

# The stream dead-letters values over 1 MiB, so the raw topic must accept them (the 5 MB edge record
# included); 8 MiB is the cap, the same as the local broker's message.max.bytes.
MAX_MESSAGE_BYTES = 8 * 1024 * 1024


class DeliveryError(RuntimeError):
    """Some records were not acknowledged by Kafka."""


class Ack(NamedTuple):
    index: int
    key: bytes | None
    partition: int
    offset: int


class _ClientLogs:
    """Receives librdkafka's own log lines (served by poll()) and writes them as structured logs."""

    def log(self, level: int, fmt: str, *args: Any) -> None:
        facility, _name, text = (list(args) + ["", "", ""])[:3]
        method = log.error if level >= logging.ERROR else log.warning if level >= logging.WARNING else log.info
        method("producer.librdkafka", facility=facility, detail=text)


def producer_config(bootstrap: str, **overrides: Any) -> dict[str, Any]:
    return {
        "bootstrap.servers": bootstrap,
        "logger": _ClientLogs(),
        "log.connection.close": False,
        "client.id": "userpipeline-producer",
        "enable.idempotence": True,
        "acks": "all",
        "compression.type": "lz4",
        "linger.ms": 20,
        "batch.size": 1_000_000,
        "message.max.bytes": MAX_MESSAGE_BYTES + 64 * 1024,
        "queue.buffering.max.messages": 100_000,
        "queue.buffering.max.kbytes": 256 * 1024,
        "delivery.timeout.ms": 300_000,
        # A broker in controlled shutdown answers metadata without itself; librdkafka then drops every broker
        # it knew (the bootstrap one is gone after the first metadata) and only bootstraps again after this
        # long (default 300 s, as long as delivery.timeout.ms): records waited silently. See docs/reliability.md.
        "metadata.recovery.strategy": "rebootstrap",
        "metadata.recovery.rebootstrap.trigger.ms": 5_000,
        **overrides,
    }


def dead_letter_topic(topic: str) -> str:
    return f"{topic}.dlq"


class Publisher:
    def __init__(self, config: dict[str, Any], topic: str, *, on_ack: Callable[[Ack], None] | None = None, max_requeues: int = 3,
                 headers: Callable[[int], list[tuple[str, bytes]]] | None = None):
        self.topic = topic
        self._headers = headers  # per index, e.g. the synthetic generator's position (producer/resume.py)
        self.config = {k: v for k, v in config.items() if k != "logger"}
        self.produced = self.acked = self.failed = 0
        self._on_ack = on_ack
        self._max_requeues = max_requeues
        self._requeue: list[tuple[int, Message, int, int]] = []
        self._fatal: KafkaError | None = None
        self._full_config = config
        self._sent_at: dict[int, float] = {}  # serial -> when first handed to the client, until acked or failed
        self._serial = 0
        self._last_delivery = time.monotonic()
        self.recoveries = 0
        self._producer = self._new_producer()

    def _new_producer(self) -> Producer:
        return Producer({**self._full_config, "error_cb": self._on_client_error})

    # -- sending ---------------------------------------------------------------------------------

    def send(self, index: int, message: Message) -> None:
        self._check_fatal()
        now = time.monotonic()
        if not self._sent_at:
            self._last_delivery = now  # the wait for an acknowledgement starts now
        self.produced += 1
        self._serial += 1
        self._sent_at[self._serial] = now
        self._produce(index, message, 0, self._serial)

    def _produce(self, index: int, message: Message, attempt: int, serial: int) -> None:
        callback = functools.partial(self._on_delivery, index, message, attempt, serial)
        while True:
            try:
                self._producer.produce(self.topic, message.value, message.key, on_delivery=callback,
                                       headers=self._headers(index) if self._headers else None)
                return
            except BufferError:  # local queue full: serve delivery callbacks, then try again
                self._producer.poll(0.05)
            except KafkaException as exc:  # refused before sending, e.g. larger than message.max.bytes
                self._report(index, message.key, exc.args[0], len(message.value), serial)
                return

    def poll(self, timeout: float = 0.0) -> None:
        self._producer.poll(timeout)
        self._check_fatal()
        requeue, self._requeue = self._requeue, []
        for index, message, attempt, serial in requeue:
            self._produce(index, message, attempt, serial)

    @property
    def outstanding(self) -> int:
        # Our own count of records not yet acknowledged or failed: len(producer) also counts librdkafka's
        # internal requests and events, so it can read one more than the records waiting.
        return len(self._sent_at)

    def oldest_unacked_seconds(self) -> float:
        """Age of the oldest record handed to the client and not yet acknowledged (0 when none)."""
        oldest = next(iter(self._sent_at.values()), None)
        return 0.0 if oldest is None else time.monotonic() - oldest

    def seconds_without_acks(self) -> float:
        """How long records have been waiting with no delivery report at all (0 when nothing waits)."""
        return time.monotonic() - self._last_delivery if self._sent_at else 0.0

    def cluster_ready(self) -> bool:
        """True when the cluster answers and every partition of the topic has a leader."""
        admin = AdminClient({"bootstrap.servers": self.config["bootstrap.servers"], "log_level": 0})
        try:  # a fresh client: the stuck one may know no broker at all
            topic = admin.list_topics(self.topic, timeout=5).topics.get(self.topic)
        except KafkaException:
            return False
        return bool(topic and topic.error is None and topic.partitions
                    and all(p.leader >= 0 for p in topic.partitions.values()))

    def recover(self) -> None:
        """Replace a client that stopped reporting deliveries: purge it and re-send everything it held.

        Records purged while in flight may already be written, so Kafka can hold a duplicate; the
        stream is idempotent per user id, and nothing is lost.
        """
        old, self._producer = self._producer, self._new_producer()
        old.purge(in_queue=True, in_flight=True, blocking=False)
        deadline = time.monotonic() + 10
        while len(old) and time.monotonic() < deadline:
            old.poll(0.1)  # serves the purged records' callbacks: they are queued for the new client
        self.recoveries += 1
        self._last_delivery = time.monotonic()
        log.warning("producer.client_replaced", requeued=len(self._requeue), left_behind=len(old),
                    recoveries=self.recoveries, hint="the Kafka client stopped reporting deliveries; records are re-sent")

    def flush(self, timeout: float = 60.0) -> None:
        """Wait for every delivery; raise DeliveryError if any record is not acknowledged."""
        deadline = time.monotonic() + timeout
        while self.outstanding and time.monotonic() < deadline:
            self._producer.flush(min(1.0, max(0.0, deadline - time.monotonic())))
            self.poll(0)
        if self.failed or self.outstanding:
            raise DeliveryError(
                f"{self.failed} record(s) failed and {self.outstanding} are still unacknowledged after {timeout:.0f}s "
                f"(acked {self.acked} of {self.produced}); check that Kafka at {self.config['bootstrap.servers']} is up, then rerun"
            )

    # -- callbacks -------------------------------------------------------------------------------

    def _on_delivery(self, index: int, message: Message, attempt: int, serial: int, err: KafkaError | None,
                     msg: KafkaMessage) -> None:
        self._last_delivery = time.monotonic()
        if err is None:
            self.acked += 1
            self._sent_at.pop(serial, None)
            if self._on_ack is not None:
                self._on_ack(Ack(index, message.key, msg.partition(), msg.offset()))
            return
        if err.code() in (KafkaError._PURGE_QUEUE, KafkaError._PURGE_INFLIGHT):  # recover() replaced the client
            self._requeue.append((index, message, attempt, serial))
            return
        if (err.retriable() or err.code() == KafkaError._MSG_TIMED_OUT) and not err.fatal() and attempt < self._max_requeues:
            log.warning("producer.delivery_retry", index=index, attempt=attempt + 1, error=err.name())
            self._requeue.append((index, message, attempt + 1, serial))
            return
        self._report(index, message.key, err, len(message.value), serial)

    def _report(self, index: int, key: bytes | None, err: KafkaError, size: int, serial: int) -> None:
        self.failed += 1
        self._sent_at.pop(serial, None)
        log.error("producer.delivery_failed", index=index, key=key.decode() if key else None, error=err.name(),
                  detail=err.str(), value_bytes=size, failed_total=self.failed)

    def _on_client_error(self, err: KafkaError) -> None:
        if err.fatal():
            self._fatal = err
            log.error("producer.kafka_fatal", error=err.name(), detail=err.str())
        elif err.code() == KafkaError._ALL_BROKERS_DOWN:
            log.warning("producer.kafka_down", detail=err.str(), hint="records wait in the client and are retried")
        else:  # connection-level details; librdkafka's own log lines already say them
            log.debug("producer.kafka_client_error", error=err.name(), detail=err.str())

    def _check_fatal(self) -> None:
        if self._fatal is not None:
            raise DeliveryError(f"the Kafka producer hit a fatal error ({self._fatal.name()}: {self._fatal.str()}); restart it")


# -- topics --------------------------------------------------------------------------------------


def _not_already_exists(exc: BaseException) -> bool:
    return isinstance(exc, KafkaException) and exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS


def topic_specs(spec: UserPipelineSpec) -> list[NewTopic]:
    """The raw and dead-letter topics, wherever they are made (here locally, the operator on Kubernetes).

    The raw topic uses broker time (`message.timestamp.type=LogAppendTime`): the broker stamps each record
    when it appends it, so "the latest Kafka timestamp wins" (docs/data-contract.md) follows the log's order
    and a producer whose clock runs ahead cannot make an old record win (issue 11)."""
    raw, retention = spec.topic, spec.retention
    return [
        NewTopic(raw.name, raw.partitions, raw.replicas, config={
            "retention.ms": str(parse_duration(raw.retention) * 1000),
            "max.message.bytes": str(MAX_MESSAGE_BYTES),
            "message.timestamp.type": "LogAppendTime",
        }),
        NewTopic(dead_letter_topic(raw.name), raw.partitions, raw.replicas, config={
            "retention.ms": str(parse_duration(retention.dead_letter) * 1000),
        }),
    ]


@retry(retry=retry_if_exception(_not_already_exists), stop=stop_after_delay(60), wait=wait_exponential_jitter(multiplier=0.5, max=5, jitter=0.5), reraise=True)
def _create_or_update(admin: AdminClient, topic: NewTopic) -> None:
    try:
        admin.create_topics([topic], request_timeout=15)[topic.topic].result()
        log.info("producer.topic_created", topic=topic.topic, partitions=topic.num_partitions, replicas=topic.replication_factor)
    except KafkaException as exc:
        if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
            raise
        entries = [ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET) for k, v in topic.config.items()]
        resource = ConfigResource(ResourceType.TOPIC, topic.topic, incremental_configs=entries)
        admin.incremental_alter_configs([resource])[resource].result()
        log.info("producer.topic_config_applied", topic=topic.topic, **{k.replace(".", "_"): v for k, v in topic.config.items()})


def wait_for_topic(bootstrap: str, topic: str, stopping: threading.Event, interval: float = 5.0) -> None:
    """Topics owned by someone else (Strimzi KafkaTopics): wait until the raw topic exists, never create it."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    while not stopping.is_set():
        metadata = admin.list_topics(timeout=15)
        if topic in metadata.topics and metadata.topics[topic].error is None:
            log.info("producer.topic_found", topic=topic, managed=False)
            return
        log.warning("producer.topic_missing", topic=topic, managed=False,
                    hint="topics are not managed here (USERPIPELINE_MANAGE_TOPICS=false): create it, e.g. with its KafkaTopic")
        stopping.wait(interval)


def ensure_topics(bootstrap: str, spec: UserPipelineSpec) -> None:
    """Create the raw and dead-letter topics if missing; apply retention (and size limit) if they exist."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for topic in topic_specs(spec):
        _create_or_update(admin, topic)
