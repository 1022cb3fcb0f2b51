"""An external Kafka without Strimzi: the operator makes and configures the topics itself with the Kafka admin
client (the real Kafka of the test harness), with the same definitions the KafkaTopics carry."""

from __future__ import annotations

import uuid

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, ConfigResource, ResourceType
from harness.polling import wait_for

from userpipeline.jobs.producer.publisher import MAX_MESSAGE_BYTES
from userpipeline.operator.kube import topics
from userpipeline.operator.kube.parts import Context
from userpipeline.operator.kube.settings import OperatorSettings
from userpipeline.operator.spec import UserPipelineSpec

DAY_MS = 86400 * 1000


def context(kafka, spec: dict) -> Context:
    settings = OperatorSettings(topics_via="admin", kafka_bootstrap=kafka.bootstrap, store_timeout_seconds=15)
    return Context("ext", "external", str(uuid.uuid4()), UserPipelineSpec.model_validate(spec), settings, kube=None)


def broker_state(kafka, topic: str) -> tuple[int, dict[str, str]]:
    """Partitions and configs, once the new topic's metadata has reached the broker."""
    return wait_for(lambda: _broker_state(kafka, topic), 30, what=f"topic {topic} described")


def _broker_state(kafka, topic: str) -> tuple[int, dict[str, str]] | None:
    admin = AdminClient({"bootstrap.servers": kafka.bootstrap})
    found = admin.list_topics(timeout=15).topics.get(topic)
    if found is None or found.error is not None:
        return None
    resource = ConfigResource(ResourceType.TOPIC, topic)
    try:
        configs = admin.describe_configs([resource])[resource].result(timeout=15)
    except KafkaException:
        return None
    return len(found.partitions), {k: v.value for k, v in configs.items()}


def test_topics_are_made_grown_and_configured_without_strimzi(kafka) -> None:
    name = f"ext{uuid.uuid4().hex[:8]}.raw"
    spec = {"topic": {"name": name, "partitions": 2, "retention": "2d"}, "retention": {"deadLetter": "3d"}}
    first = topics.reconcile(context(kafka, spec))
    assert (first.ok, first.reason) == (True, "Applied"), first.message
    assert "created" in first.changes[0]
    partitions, config = broker_state(kafka, name)
    assert partitions == 2
    assert (config["retention.ms"], config["max.message.bytes"], config["message.timestamp.type"]) == \
        (str(2 * DAY_MS), str(MAX_MESSAGE_BYTES), "LogAppendTime")
    assert broker_state(kafka, f"{name}.dlq")[1]["retention.ms"] == str(3 * DAY_MS)

    again = topics.reconcile(context(kafka, spec))
    assert again.ok and again.changes == []  # idempotent: nothing to change, nothing reported

    spec["topic"].update(partitions=3, retention="1d")
    grown = topics.reconcile(context(kafka, spec))
    assert grown.ok and "partitions 2 -> 3" in grown.changes[0] and f"-> {DAY_MS}" in grown.changes[0]
    assert broker_state(kafka, name)[0] == 3 and broker_state(kafka, name)[1]["retention.ms"] == str(DAY_MS)

    spec["topic"]["partitions"] = 1  # the CRD forbids it; the operator refuses it too, with a reason
    shrunk = topics.reconcile(context(kafka, spec))
    assert (shrunk.ok, shrunk.reason) == (False, "Rejected") and "can only grow" in shrunk.message
