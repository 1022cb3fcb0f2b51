"""Topics on an external Kafka (no Strimzi): created, grown and configured with the Kafka admin client.

Idempotent: each call compares what the broker has with what is wanted and changes only the difference
(partitions only grow; configs are set one by one with incremental alter), returning what it changed.
"""

from __future__ import annotations

import threading

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewPartitions,
    NewTopic,
    ResourceType,
)


class TopicProblem(Exception):
    """The broker answered, but the topic cannot be made as wanted (e.g. fewer partitions asked for)."""


_LOCK = threading.Lock()
_ADMINS: dict[str, AdminClient] = {}


def admin(bootstrap: str) -> AdminClient:
    with _LOCK:
        if bootstrap not in _ADMINS:
            _ADMINS[bootstrap] = AdminClient({"bootstrap.servers": bootstrap, "client.id": "userpipeline-operator"})
        return _ADMINS[bootstrap]


def drop(bootstrap: str) -> None:
    with _LOCK:
        _ADMINS.pop(bootstrap, None)


def ensure_topic(bootstrap: str, topic: NewTopic, timeout: float) -> list[str]:
    client = admin(bootstrap)
    # All topics' metadata: asking for one topic by name may create it (auto.create.topics.enable) or
    # answer with a half-made entry.
    found = client.list_topics(timeout=timeout).topics.get(topic.topic)
    if found is None:
        return _create(client, topic, timeout)
    if found.error is not None:
        raise KafkaException(found.error)
    changes = _grow(client, topic, len(found.partitions), timeout)
    return changes + _configure(client, topic, timeout)


def _create(client: AdminClient, topic: NewTopic, timeout: float) -> list[str]:
    try:
        client.create_topics([topic], request_timeout=timeout)[topic.topic].result(timeout=timeout)
    except KafkaException as exc:
        if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
            raise
        return []  # made meanwhile (or its metadata is not out yet): the next pass configures it
    return [f"topic {topic.topic} created ({topic.num_partitions} partitions)"]


def _grow(client: AdminClient, topic: NewTopic, current: int, timeout: float) -> list[str]:
    if current == topic.num_partitions:
        return []
    if current > topic.num_partitions:
        raise TopicProblem(f"topic {topic.topic} has {current} partitions, more than the {topic.num_partitions} "
                           "asked for: partitions can only grow")
    grow = NewPartitions(topic.topic, topic.num_partitions)
    client.create_partitions([grow], request_timeout=timeout)[topic.topic].result(timeout=timeout)
    return [f"topic {topic.topic} partitions {current} -> {topic.num_partitions}"]


def _configure(client: AdminClient, topic: NewTopic, timeout: float) -> list[str]:
    resource = ConfigResource(ResourceType.TOPIC, topic.topic)
    described = client.describe_configs([resource], request_timeout=timeout)[resource].result(timeout=timeout)
    wanted = topic.config or {}
    differing = {k: v for k, v in wanted.items() if described.get(k) is None or described[k].value != v}
    if not differing:
        return []
    entries = [ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET) for k, v in differing.items()]
    change = ConfigResource(ResourceType.TOPIC, topic.topic, incremental_configs=entries)
    client.incremental_alter_configs([change], request_timeout=timeout)[change].result(timeout=timeout)
    return [f"topic {topic.topic} {k} {described[k].value if described.get(k) else None} -> {v}"
            for k, v in differing.items()]
