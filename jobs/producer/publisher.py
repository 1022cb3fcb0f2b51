"""Kafka side of the producer: topics, an idempotent acks=all producer, and every delivery accounted for.

A delivery either reaches its callback as acknowledged, or as an error. Retriable errors (librdkafka
already retried them until `delivery.timeout.ms`) are re-queued up to `max_requeues` times; anything
else is counted in `failed`, logged, and raised by `flush()`. Nothing is dropped silently.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

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


@dataclass(frozen=True)
class Ack:
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
        **overrides,
    }


def dead_letter_topic(topic: str) -> str:
    return f"{topic}.dlq"


class Publisher:
    def __init__(self, config: dict[str, Any], topic: str, *, on_ack: Callable[[Ack], None] | None = None, max_requeues: int = 3):
        self.topic = topic
        self.config = {k: v for k, v in config.items() if k != "logger"}
        self.produced = self.acked = self.failed = 0
        self._on_ack = on_ack
        self._max_requeues = max_requeues
        self._requeue: list[tuple[int, Message, int]] = []
        self._fatal: KafkaError | None = None
        self._producer = Producer({**config, "error_cb": self._on_client_error})

    # -- sending ---------------------------------------------------------------------------------

    def send(self, index: int, message: Message) -> None:
        self._check_fatal()
        self.produced += 1
        self._produce(index, message, 0)

    def _produce(self, index: int, message: Message, attempt: int) -> None:
        callback = functools.partial(self._on_delivery, index, message, attempt)
        while True:
            try:
                self._producer.produce(self.topic, message.value, message.key, on_delivery=callback)
                return
            except BufferError:  # local queue full: serve delivery callbacks, then try again
                self._producer.poll(0.05)
            except KafkaException as exc:  # refused before sending, e.g. larger than message.max.bytes
                self._report(index, message.key, exc.args[0], len(message.value))
                return

    def poll(self, timeout: float = 0.0) -> None:
        self._producer.poll(timeout)
        self._check_fatal()
        requeue, self._requeue = self._requeue, []
        for index, message, attempt in requeue:
            self._produce(index, message, attempt)

    @property
    def outstanding(self) -> int:
        return len(self._producer) + len(self._requeue)

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

    def _on_delivery(self, index: int, message: Message, attempt: int, err: KafkaError | None, msg: KafkaMessage) -> None:
        if err is None:
            self.acked += 1
            if self._on_ack is not None:
                self._on_ack(Ack(index, message.key, msg.partition(), msg.offset()))
            return
        if (err.retriable() or err.code() == KafkaError._MSG_TIMED_OUT) and not err.fatal() and attempt < self._max_requeues:
            log.warning("producer.delivery_retry", index=index, attempt=attempt + 1, error=err.name())
            self._requeue.append((index, message, attempt + 1))
            return
        self._report(index, message.key, err, len(message.value))

    def _report(self, index: int, key: bytes | None, err: KafkaError, size: int) -> None:
        self.failed += 1
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
    raw, retention = spec.topic, spec.retention
    return [
        NewTopic(raw.name, raw.partitions, raw.replicas, config={
            "retention.ms": str(parse_duration(raw.retention) * 1000),
            "max.message.bytes": str(MAX_MESSAGE_BYTES),
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


def ensure_topics(bootstrap: str, spec: UserPipelineSpec) -> None:
    """Create the raw and dead-letter topics if missing; apply retention (and size limit) if they exist."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for topic in topic_specs(spec):
        _create_or_update(admin, topic)
