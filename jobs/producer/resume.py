"""Where a synthetic run continues when it has no progress file of its own (a new pod on Kubernetes): after the
records already in the raw topic, which carry their generator seed and index in a header.

The smallest of the partitions' last indexes is taken, so no index is skipped: records between it and the
largest are sent again, which the stream's keyed upserts absorb (the same user, the same version).
"""

from __future__ import annotations

import time
import uuid

import structlog
from confluent_kafka import Consumer, KafkaException, TopicPartition

log = structlog.get_logger("producer")
HEADER = "userpipeline-synthetic"


def header(seed: int, index: int) -> list[tuple[str, bytes]]:
    return [(HEADER, f"{seed}:{index}".encode())]


def _index(headers: list[tuple[str, bytes]] | None, seed: int) -> int | None:
    for name, value in headers or []:
        if name == HEADER and value:
            found_seed, _, index = value.decode(errors="replace").partition(":")
            if found_seed == str(seed) and index.isdigit():
                return int(index)
    return None


def next_index_in_topic(bootstrap: str, topic: str, seed: int, timeout: float = 15.0) -> int:
    """1 + the smallest last index (of this seed) over the topic's non-empty partitions; 0 when there is none."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"userpipeline-resume-{uuid.uuid4().hex[:8]}",
                         "enable.auto.commit": False, "log_level": 3})
    try:
        found = consumer.list_topics(topic, timeout=timeout).topics.get(topic)
        if found is None or found.error is not None:
            return 0
        last = {}
        for partition in found.partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=timeout)
            if high > low:
                last[partition] = high - 1
        indexes = _last_indexes(consumer, topic, last, seed, timeout)
    except KafkaException as exc:
        log.warning("producer.resume_unknown", topic=topic, error=str(exc), hint="starting at index 0")
        return 0
    finally:
        consumer.close()
    return min(indexes) + 1 if indexes else 0


def _last_indexes(consumer: Consumer, topic: str, last: dict[int, int], seed: int, timeout: float) -> list[int]:
    if not last:
        return []
    consumer.assign([TopicPartition(topic, p, offset) for p, offset in last.items()])
    indexes: dict[int, int | None] = {}
    deadline = time.monotonic() + timeout
    while len(indexes) < len(last) and time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is not None and message.error() is None and message.offset() == last[message.partition()]:
            indexes[message.partition()] = _index(message.headers(), seed)
    return [index for index in indexes.values() if index is not None]
