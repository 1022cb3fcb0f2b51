"""The raw and dead-letter topics: Strimzi `KafkaTopic`s (kafka.strimzi.io/v1), or, for an external Kafka
without Strimzi (settings.topics_via == "admin"), the operator's own Kafka admin client.

Either way the operator is the only owner of the topics on Kubernetes: names, partitions and every config
come from the producer's own topic definitions (`jobs.producer.publisher.topic_specs`, e.g.
`max.message.bytes`, and for the raw topic `message.timestamp.type=LogAppendTime`: the broker stamps each
record, so "the latest Kafka timestamp wins" follows the log's order whatever the producers' clocks say, as
locally), and the pods run with USERPIPELINE_MANAGE_TOPICS=false.

KafkaTopics live in the pipeline's namespace, owned by the UserPipeline; Strimzi's Topic Operator handles
topics labelled with its cluster in the namespace it watches, so the Kafka cluster runs there too.
"""

from __future__ import annotations

from confluent_kafka import KafkaException
from confluent_kafka.admin import NewTopic

from userpipeline.jobs.producer.publisher import topic_specs
from userpipeline.operator.kube import kafka_admin
from userpipeline.operator.kube.client import Obj
from userpipeline.operator.kube.parts import Context, Outcome, apply_children, failed
from userpipeline.operator.kube.readback import kafka_topic_problem

CONDITION = "Topics"


def _value(text: str) -> int | str:
    return int(text) if text.isdigit() else text


def desired_topics(ctx: Context) -> list[NewTopic]:
    """The producer's definitions (broker time for the raw topic included), with an explicit cleanup policy."""
    raw, dlq = topic_specs(ctx.spec)
    raw = NewTopic(raw.topic, raw.num_partitions, raw.replication_factor,
                   config={"cleanup.policy": "delete", **(raw.config or {})})
    dlq = NewTopic(dlq.topic, dlq.num_partitions, dlq.replication_factor,
                   config={"cleanup.policy": "delete", **(dlq.config or {})})
    return [raw, dlq]


def kafka_topic(ctx: Context, suffix: str, topic: NewTopic) -> Obj:
    return {
        "apiVersion": "kafka.strimzi.io/v1", "kind": "KafkaTopic",
        "metadata": ctx.metadata(ctx.child_name(suffix), "topic", {"strimzi.io/cluster": ctx.settings.kafka_cluster}),
        "spec": {"topicName": topic.topic, "partitions": topic.num_partitions, "replicas": topic.replication_factor,
                 "config": {key: _value(value) for key, value in (topic.config or {}).items()}},
    }


def _summary(raw: NewTopic, dlq: NewTopic) -> tuple[str, dict]:
    raw_ms, dlq_ms = int(raw.config["retention.ms"]), int(dlq.config["retention.ms"])
    summary = f"{raw.topic} and {dlq.topic}: {raw.num_partitions} partitions, retention.ms {raw_ms} and {dlq_ms}"
    return summary, {"topicRetentionMs": raw_ms, "deadLetterRetentionMs": dlq_ms, "partitions": raw.num_partitions}


def reconcile(ctx: Context) -> Outcome:
    raw, dlq = desired_topics(ctx)
    summary, effective = _summary(raw, dlq)
    if ctx.settings.topics_via == "admin":
        return _reconcile_with_admin(ctx, [raw, dlq], summary, effective)
    objects = [kafka_topic(ctx, "raw", raw), kafka_topic(ctx, "dlq", dlq)]
    outcome = apply_children(ctx, CONDITION, objects, summary, effective)
    problems = [p for p in map(kafka_topic_problem, outcome.stored.values()) if p] if outcome.ok else []
    return outcome.not_working("NotReady", "; ".join(problems)) if problems else outcome


def _reconcile_with_admin(ctx: Context, topics: list[NewTopic], summary: str, effective: dict) -> Outcome:
    bootstrap, timeout = ctx.settings.kafka_bootstrap, ctx.settings.store_timeout_seconds
    try:
        changes = [c for topic in topics for c in kafka_admin.ensure_topic(bootstrap, topic, timeout)]
    except kafka_admin.TopicProblem as problem:
        return failed(CONDITION, "Rejected", str(problem))
    except KafkaException as exc:
        kafka_admin.drop(bootstrap)
        return failed(CONDITION, "Unreachable", f"Kafka at {bootstrap}: {str(exc)[:300]}")
    return Outcome(CONDITION, True, "Applied", summary, effective, [f"{summary}; {'; '.join(changes)}"] if changes else [])
