"""The raw and dead-letter topics as Strimzi `KafkaTopic`s (kafka.strimzi.io/v1).

They live in the pipeline's namespace, owned by the UserPipeline; Strimzi's Topic Operator handles
topics labelled with its cluster in the namespace it watches, so the Kafka cluster runs there too.
"""

from __future__ import annotations

from userpipeline.operator.kube.client import Obj
from userpipeline.operator.kube.parts import Context, Outcome, apply_children
from userpipeline.operator.spec import parse_duration

CONDITION = "Topics"


def dead_letter_topic(raw_topic: str) -> str:
    return f"{raw_topic}.dlq"


def kafka_topic(ctx: Context, suffix: str, topic: str, retention_ms: int) -> Obj:
    return {
        "apiVersion": "kafka.strimzi.io/v1", "kind": "KafkaTopic",
        "metadata": ctx.metadata(ctx.child_name(suffix), "topic", {"strimzi.io/cluster": ctx.settings.kafka_cluster}),
        "spec": {"topicName": topic, "partitions": ctx.spec.topic.partitions, "replicas": ctx.spec.topic.replicas,
                 "config": {"retention.ms": retention_ms, "cleanup.policy": "delete"}},
    }


def reconcile(ctx: Context) -> Outcome:
    topic = ctx.spec.topic
    raw_ms = parse_duration(topic.retention) * 1000
    dlq_ms = parse_duration(ctx.spec.retention.dead_letter) * 1000
    objects = [kafka_topic(ctx, "raw", topic.name, raw_ms),
               kafka_topic(ctx, "dlq", dead_letter_topic(topic.name), dlq_ms)]
    summary = (f"{topic.name} and {dead_letter_topic(topic.name)}: {topic.partitions} partitions, "
               f"retention.ms {raw_ms} and {dlq_ms}")
    return apply_children(ctx, CONDITION, objects, summary,
                          {"topicRetentionMs": raw_ms, "deadLetterRetentionMs": dlq_ms, "partitions": topic.partitions})
