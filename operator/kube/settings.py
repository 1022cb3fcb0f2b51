"""Operator configuration, from `USERPIPELINE_OPERATOR_*` environment variables (the chart sets them).

Lists and objects are JSON (`USERPIPELINE_OPERATOR_PRODUCER_COMMAND='["python", "-m", ...]'`,
`USERPIPELINE_OPERATOR_STORES='{"cassandra_hosts": {"value": "up-dc1-service"}, ...}'`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping

from typing import Any, Literal, get_origin

from pydantic import BaseModel, Field

from userpipeline.operator.kube.wiring import StoreWiring

CONFIG_DIR = "/etc/userpipeline"
CONFIG_KEY = "pipeline.yaml"
CONFIG_PATH = f"{CONFIG_DIR}/{CONFIG_KEY}"
PREFIX = "USERPIPELINE_OPERATOR_"
PRODUCER_METRICS_PORT = 9100  # the producer's Prometheus endpoint, also its probes' target


class OperatorSettings(BaseModel):
    image: str = Field("userpipeline:0.1.0", description="Image of the producer, the streaming job and the purge")
    sync_image: str = Field("", description="Image of the config-sync sidecar; empty means `image`")
    spark_image: str = Field("userpipeline-spark:0.1.0", description="Image of the streaming job (images/spark)")
    image_pull_policy: str = "IfNotPresent"
    kafka_cluster: str = Field("userpipeline", description="Strimzi Kafka cluster (label strimzi.io/cluster)")
    kafka_bootstrap: str = "userpipeline-kafka-bootstrap:9092"
    topics_via: Literal["strimzi", "admin"] = Field(
        "strimzi", description="Who makes the topics: Strimzi KafkaTopics, or the operator's Kafka admin client "
        "(an external Kafka without Strimzi)")
    stores: StoreWiring = Field(default_factory=StoreWiring,
                                description="Where Cassandra and MongoDB are and which Secrets hold their credentials")
    spark_service_account: str = "userpipeline-spark"
    spark_version: str = "4.2.0"
    stream_main: str = "local:///opt/userpipeline/stream.py"
    checkpoint_storage: str = Field("1Gi", description="Size of each pipeline's checkpoint volume claim")
    checkpoint_storage_class: str = Field("", description="StorageClass of that claim; empty: the default")
    producer_command: list[str] = ["python", "-P", "-m", "userpipeline.jobs.producer", "--spec", CONFIG_PATH,
                                   "--metrics-port", str(PRODUCER_METRICS_PORT)]
    purge_command: list[str] = ["userpipeline", "purge", "-f", CONFIG_PATH]
    max_backoff_seconds: float = Field(60, gt=0, description="Upper bound of the retry delay of a failing part")
    store_timeout_seconds: float = Field(5, gt=0, description="Connect/query timeout for Cassandra and MongoDB")
    readback_seconds: float = Field(15, gt=0, description="How often the health of every pipeline's parts is read back")
    flow_seconds: float = Field(0, ge=0, description="Ready also needs data flowing: a batch completed within this "
                                "many seconds (plus three records' time at the pipeline's rate) while the producer "
                                "runs; a paused producer is not Ready. 0: Ready means the parts work")
    namespaces: list[str] = Field([], description="Namespaces watched (the chart's watchNamespaces); empty: all")
    platform_namespace: str = Field("", description="Namespace of the chart's platform ConfigMap (the operator's "
                                    "own); empty: the platform applier is off")
    ingress_class_name: str = Field("", description="IngressClass of the dashboards' Ingresses; empty: the default")
    http_route_enabled: bool = Field(False, description="Also route to the dashboards with a Gateway API HTTPRoute")
    http_route_parent_refs: list[dict[str, Any]] = Field([], description="The HTTPRoutes' parentRefs (Gateways)")
    dashboard_command: list[str] = ["gunicorn", "--no-control-socket", "-k", "gthread", "--threads", "4",
                                    "-b", "0.0.0.0:8050", "userpipeline.dashboard.wsgi:server"]

    @property
    def sidecar_image(self) -> str:
        return self.sync_image or self.image

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> OperatorSettings:
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for name, field in cls.model_fields.items():
            raw = env.get(PREFIX + name.upper())
            if raw is not None:
                plain = field.annotation in (str, float, bool) or get_origin(field.annotation) is Literal
                values[name] = raw if plain else json.loads(raw)
        return cls.model_validate(values)
