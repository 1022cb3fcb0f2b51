"""The streaming job as a Spark Operator `SparkApplication` (sparkoperator.k8s.io/v1beta2).

The driver and executors mount the pipeline ConfigMap. The Spark Operator resubmits an application
whose spec changed, so the spec carries a hash of only what the job reads (topic, privacy, stream):
a producer rate change does not restart the stream. The driver keeps the query's checkpoint on a
PersistentVolumeClaim (created once, owned by the pipeline), so a resubmitted driver resumes where the
last one stopped.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from typing import Any

from pymongo.errors import PyMongoError

from userpipeline.jobs.stream.health import assess
from userpipeline.operator.kube.client import Obj
from userpipeline.operator.kube.mongo_health import stream_health_document
from userpipeline.operator.kube.parts import Context, Outcome, apply_children, child_key
from userpipeline.operator.kube.pods import container_security, hmac_env, kafka_env, store_env
from userpipeline.operator.kube.readback import spark_problem
from userpipeline.operator.kube.settings import CONFIG_DIR, CONFIG_PATH
from userpipeline.operator.kube.wiring import SecretProblem

CONDITION = "StreamJob"
CHECKPOINT_DIR = "/var/lib/userpipeline/checkpoints"
SPARK_RUN_AS = 185  # the `spark` user of the apache/spark images (images/spark/Dockerfile)


def stream_config_hash(ctx: Context) -> str:
    relevant = ctx.spec.model_dump(by_alias=True, mode="json", include={"topic", "privacy", "stream"})
    return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:16]


def _role(ctx: Context, cores: int, memory: str) -> Obj:
    return {
        "cores": cores,
        "memory": memory,
        "labels": ctx.labels("stream"),
        "annotations": {"userpipeline.io/stream-config": stream_config_hash(ctx)},
        "env": [*kafka_env(ctx), *store_env(ctx), *hmac_env(ctx),
                {"name": "USERPIPELINE_CONFIG", "value": CONFIG_PATH}],
        "configMaps": [{"name": ctx.child_name("config"), "path": CONFIG_DIR}],
        "podSecurityContext": {"runAsNonRoot": True, "runAsUser": SPARK_RUN_AS, "fsGroup": SPARK_RUN_AS,
                               "seccompProfile": {"type": "RuntimeDefault"}},
        "securityContext": {**container_security(), "readOnlyRootFilesystem": False},  # Spark writes scratch files
    }


def checkpoint_claim(ctx: Context) -> Obj:
    spec: Obj = {"accessModes": ["ReadWriteOnce"],
                 "resources": {"requests": {"storage": ctx.settings.checkpoint_storage}}}
    if ctx.settings.checkpoint_storage_class:
        spec["storageClassName"] = ctx.settings.checkpoint_storage_class
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": ctx.metadata(ctx.child_name("checkpoints"), "stream"), "spec": spec}


def spark_application(ctx: Context) -> Obj:
    settings, stream = ctx.settings, ctx.spec.stream
    driver = {**_role(ctx, 1, "1g"), "serviceAccount": settings.spark_service_account,
              "volumeMounts": [{"name": "checkpoints", "mountPath": CHECKPOINT_DIR}]}
    driver["env"] = [*driver["env"], {"name": "USERPIPELINE_CHECKPOINT_DIR", "value": CHECKPOINT_DIR}]
    executor = {**_role(ctx, 1, "1g"), "instances": stream.executors}
    return {
        "apiVersion": "sparkoperator.k8s.io/v1beta2", "kind": "SparkApplication",
        "metadata": ctx.metadata(ctx.child_name("stream"), "stream"),
        "spec": {
            "type": "Python",
            "mode": "cluster",
            "image": settings.spark_image,
            "imagePullPolicy": settings.image_pull_policy,
            "mainApplicationFile": settings.stream_main,
            "sparkVersion": settings.spark_version,
            "restartPolicy": {"type": "Always", "onFailureRetryInterval": 10, "onSubmissionFailureRetryInterval": 20},
            "sparkConf": {"spark.sql.shuffle.partitions": str(max(2, ctx.spec.topic.partitions))},
            "volumes": [{"name": "checkpoints",
                         "persistentVolumeClaim": {"claimName": ctx.child_name("checkpoints")}}],
            "driver": driver,
            "executor": executor,
        },
    }


def reconcile(ctx: Context) -> Outcome:
    stream = ctx.spec.stream
    summary = f"trigger {stream.trigger_interval}, {stream.executors} executor(s)"
    app = spark_application(ctx)
    outcome = apply_children(ctx, CONDITION, [checkpoint_claim(ctx), app], summary,
                             {"triggerInterval": stream.trigger_interval, "executors": stream.executors})
    if not outcome.ok:
        return outcome
    problem = spark_problem(outcome.stored[child_key(app)])
    if problem:
        return outcome.not_working("NotRunning", problem)
    try:
        health = stream_health_document(ctx)
    except (PyMongoError, SecretProblem, ValueError):
        return outcome  # the MongoDB part reports why the health document cannot be read
    verdict = assess(health)
    if verdict.stalled:
        return outcome.not_working("StreamStalled", verdict.reason)
    no_flow = flow_problem(ctx, health)
    return outcome.not_working(*no_flow) if no_flow else outcome


def flow_problem(ctx: Context, health: dict[str, Any] | None, now: datetime | None = None) -> tuple[str, str] | None:
    """Why no data flows (reason, message), when the operator's `flow_seconds` asks Ready to mean flowing data:
    the stream completes batches only when records arrive, so its last batch time says whether they do."""
    window = ctx.settings.flow_seconds
    if not window:
        return None
    producer = ctx.spec.producer
    if producer.paused or not producer.rate_per_second:
        return "ProducerPaused", "the producer is paused (spec.producer.paused or ratePerSecond 0): no data flows"
    last = (health or {}).get("lastBatchAt")
    if not isinstance(last, datetime):
        return "NoDataYet", "no batch has completed yet: waiting for the first records to go through the stream"
    last = last if last.tzinfo else last.replace(tzinfo=timezone.utc)
    idle = ((now or datetime.now(timezone.utc)) - last).total_seconds()
    allowed = window + 3 / producer.rate_per_second
    if idle > allowed:
        return "NoData", (f"no batch completed for {idle:.0f}s (allowed {allowed:.0f}s) while the producer should "
                          f"send {producer.rate_per_second:g} records/s: see the Producer condition and its log")
    return None
