"""The objects the operator makes for one UserPipeline, built offline with the operator's own builders and
the settings the chart gives it (for static checks such as checkov; the install test reads the real ones)."""

from __future__ import annotations

from userpipeline.jobs.producer.publisher import topic_specs
from userpipeline.operator.kube import dashboard, producer, purge, stream, topics
from userpipeline.operator.kube.parts import Context
from userpipeline.operator.kube.settings import OperatorSettings
from userpipeline.operator.spec import UserPipelineSpec

from kube.render import containers, named


def chart_settings(docs: list[dict]) -> OperatorSettings:
    """The operator's settings as the chart's Deployment sets them (literal env values only)."""
    operator = containers(named(docs, "Deployment", "userpipeline-operator"))[0]
    return OperatorSettings.from_env({e["name"]: e["value"] for e in operator["env"] if "value" in e})


def operator_children(settings: OperatorSettings, namespace: str = "userpipeline", name: str = "users",
                      spec: dict | None = None) -> list[dict]:
    ctx = Context(name, namespace, "00000000-0000-0000-0000-000000000000",
                  UserPipelineSpec.model_validate(spec or {"dashboard": {"host": "users.local"}}),
                  settings, kube=None)  # the builders only describe objects; nothing is sent
    raw, dlq = topic_specs(ctx.spec)
    return [producer.config_map(ctx), *producer.sync_rbac(ctx), producer.deployment(ctx),
            topics.kafka_topic(ctx, "raw", raw), topics.kafka_topic(ctx, "dlq", dlq),
            stream.checkpoint_claim(ctx), stream.spark_application(ctx), purge.cron_job(ctx),
            dashboard.deployment(ctx), dashboard.service(ctx), dashboard.ingress(ctx)]
