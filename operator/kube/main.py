"""Kopf handlers for UserPipeline (userpipeline.io/v1alpha1). Run: `python -m userpipeline.operator.kube`.

One handler reconciles the whole pipeline on create, resume and update. It applies every part each
time (server-side apply and compare-before-write keep that idempotent and quiet), writes the status,
posts Events, and, if a part failed, raises a TemporaryError so kopf retries with exponential backoff.
A single handler matters: kopf does not re-run handlers that already succeeded when the spec changes
again while another handler is still retrying, so split handlers could miss the newer spec.
"""

from __future__ import annotations

import logging
from typing import Any

import kopf
import structlog

from userpipeline.operator.kube import cassandra_ttl, mongo_retention
from userpipeline.operator.kube.client import Kube, load_api_client
from userpipeline.operator.kube.reconcile import reconcile
from userpipeline.operator.kube.secrets import read_secret
from userpipeline.operator.kube.settings import OperatorSettings
from userpipeline.operator.spec import GROUP, PLURAL, VERSION

log = structlog.get_logger("operator")
RESOURCE = (GROUP, VERSION, PLURAL)


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    settings.persistence.finalizer = f"{GROUP}/finalizer"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix=GROUP)
    # No cluster-wide list/watch of CRDs and namespaces: the RBAC stays minimal.
    settings.scanning.disabled = True
    # Kopf's own log lines are not turned into Events; the handler posts its own (changes, failures).
    settings.posting.level = logging.CRITICAL
    settings.execution.max_workers = 8
    memo.config = OperatorSettings.from_env()
    memo.kube = Kube(load_api_client())
    log.info("operator_started", kafka_cluster=memo.config.kafka_cluster, image=memo.config.image)


@kopf.on.cleanup()
def close(**_: Any) -> None:
    cassandra_ttl.SESSIONS.close()
    mongo_retention.CLIENTS.close()


def backoff(retry: int, ceiling: float) -> float:
    return min(ceiling, 2.0 ** min(retry, 16))


@kopf.on.resume(*RESOURCE)
@kopf.on.create(*RESOURCE)
@kopf.on.update(*RESOURCE)
def reconcile_pipeline(body: kopf.Body, patch: kopf.Patch, retry: int, memo: kopf.Memo, **_: Any) -> None:
    result = reconcile(body, memo.config, memo.kube)
    patch.status.update(result.status)
    for event in result.events:
        kopf.event(body, type=event.type, reason=event.reason, message=event.message)
    if result.invalid:
        raise kopf.PermanentError(result.status["conditions"][0]["message"])
    if result.failing:
        names = ", ".join(f"{o.condition} ({o.reason})" for o in result.failing)
        raise kopf.TemporaryError(f"failing: {names}", delay=backoff(retry, memo.config.max_backoff_seconds))


@kopf.on.delete(*RESOURCE)
def forget_pipeline(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """Children go with their owner (garbage collection); only the MongoDB settings document is ours
    to remove. Best effort: an unreachable MongoDB must not block the deletion."""
    meta = body["metadata"]
    try:
        secret = read_secret(memo.kube, meta["namespace"], memo.config.mongo_secret, ("uri",))
        client = mongo_retention.CLIENTS.get(secret["uri"], memo.config.store_timeout_seconds)
        client[secret.get("database", "userpipeline")][mongo_retention.COLLECTION].delete_one(
            {"_id": mongo_retention.DOCUMENT_ID, "updatedBy": f"{meta['namespace']}/{meta['name']}"})
    except Exception as exc:  # noqa: BLE001 - SecretProblem, PyMongoError, ...: never block the deletion
        log.warning("delete_cleanup_skipped", namespace=meta["namespace"], name=meta["name"], error=str(exc)[:200])
