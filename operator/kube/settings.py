"""Operator configuration, from `USERPIPELINE_OPERATOR_*` environment variables (the chart sets them).

Lists are JSON (`USERPIPELINE_OPERATOR_PRODUCER_COMMAND='["python", "-m", "userpipeline.jobs.producer", ...]'`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping

from pydantic import BaseModel, Field

CONFIG_DIR = "/etc/userpipeline"
CONFIG_KEY = "pipeline.yaml"
CONFIG_PATH = f"{CONFIG_DIR}/{CONFIG_KEY}"
PREFIX = "USERPIPELINE_OPERATOR_"


class OperatorSettings(BaseModel):
    image: str = Field("userpipeline:0.1.0", description="Image of the producer, the streaming job and the purge")
    sync_image: str = Field("", description="Image of the config-sync sidecar; empty means `image`")
    spark_image: str = Field("userpipeline-spark:0.1.0", description="Image of the streaming job (images/spark)")
    image_pull_policy: str = "IfNotPresent"
    kafka_cluster: str = Field("userpipeline", description="Strimzi Kafka cluster (label strimzi.io/cluster)")
    kafka_bootstrap: str = "userpipeline-kafka-bootstrap:9092"
    cassandra_secret: str = Field("userpipeline-cassandra", description="Secret with `hosts`, optional "
                                  "`username`, `password`, `keyspace`, in the pipeline's namespace")
    mongo_secret: str = Field("userpipeline-mongo", description="Secret with `uri`, optional `database`")
    spark_service_account: str = "userpipeline-spark"
    spark_version: str = "4.2.0"
    stream_main: str = "local:///opt/userpipeline/stream.py"
    checkpoint_storage: str = Field("1Gi", description="Size of each pipeline's checkpoint volume claim")
    checkpoint_storage_class: str = Field("", description="StorageClass of that claim; empty: the default")
    producer_command: list[str] = ["python", "-P", "-m", "userpipeline.jobs.producer", "--spec", CONFIG_PATH]
    purge_command: list[str] = ["userpipeline", "purge", "-f", CONFIG_PATH]
    max_backoff_seconds: float = Field(60, gt=0, description="Upper bound of the retry delay of a failing part")
    store_timeout_seconds: float = Field(5, gt=0, description="Connect/query timeout for Cassandra and MongoDB")

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
                values[name] = json.loads(raw) if field.annotation == list[str] else raw
        return cls.model_validate(values)
