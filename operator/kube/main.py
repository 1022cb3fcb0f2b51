"""Kopf handlers for UserPipeline (userpipeline.io/v1alpha1). Run: `python -m userpipeline.operator.kube`.

One handler reconciles the whole pipeline on create, resume and update. It applies every part each
time (server-side apply and compare-before-write keep that idempotent and quiet), writes the status,
posts Events, and, if a part failed, raises a TemporaryError so kopf retries with exponential backoff.
A single handler matters: kopf does not re-run handlers that already succeeded when the spec changes
again while another handler is still retrying, so split handlers could miss the newer spec.

`Ready` means working: a read-back loop runs the same reconcile every `readback_seconds` for every
pipeline, so what the upstream controllers report (KafkaTopic Ready, SparkApplication state, Deployment
availability, the stores, the stream's health) reaches the conditions. It is an operator-level thread,
not a per-object `@kopf.timer`: kopf puts a finalizer on every object a timer watches, and a finalizer
blocks `kubectl delete` while the operator is down. There is no delete handler either (children go
with their owner by garbage collection), so UserPipelines carry no finalizer at all.

A second handler applies the platform's custom resources from the chart's ConfigMap (platform.py).
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import kopf
import structlog

from userpipeline.operator.kube import cassandra_ttl, mongo_health, platform
from userpipeline.operator.kube.client import ApiException, Kube, Obj, load_api_client
from userpipeline.operator.kube.reconcile import Result, reconcile
from userpipeline.operator.kube.settings import OperatorSettings
from userpipeline.operator.kube.status import Event
from userpipeline.operator.spec import API_VERSION, GROUP, KIND, PLURAL, VERSION

log = structlog.get_logger("operator")
RESOURCE = (GROUP, VERSION, PLURAL)
# One reconcile at a time per pipeline (the kopf handler and the read-back loop).
LOCKS: defaultdict[str, threading.Lock] = defaultdict(threading.Lock)
STOP = threading.Event()
READBACK_WORKERS = 4
READBACK_THREAD: threading.Thread | None = None


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
    STOP.clear()
    global READBACK_THREAD
    READBACK_THREAD = threading.Thread(target=readback_loop, args=(memo.config, memo.kube), name="readback",
                                       daemon=True)
    READBACK_THREAD.start()
    log.info("operator_started", kafka_cluster=memo.config.kafka_cluster, image=memo.config.image,
             readback_seconds=memo.config.readback_seconds)


@kopf.on.cleanup()
def close(**_: Any) -> None:
    STOP.set()
    if READBACK_THREAD is not None:
        READBACK_THREAD.join(timeout=30)  # let a read-back in flight finish before its clients close
    cassandra_ttl.SESSIONS.close()
    mongo_health.CLIENTS.close()


def backoff(retry: int, ceiling: float) -> float:
    return min(ceiling, 2.0 ** min(retry, 16))


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def post_event(kube: Kube, obj: Obj, event: Event) -> None:
    meta = obj["metadata"]
    now = _now()
    body = {"apiVersion": "v1", "kind": "Event",
            "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
            "involvedObject": {"apiVersion": obj["apiVersion"], "kind": obj["kind"], "name": meta["name"],
                               "namespace": meta["namespace"], "uid": meta["uid"]},
            "type": event.type, "reason": event.reason, "message": event.message[:1000],
            "source": {"component": "userpipeline-operator"}, "firstTimestamp": now, "lastTimestamp": now, "count": 1}
    try:
        kube.request("POST", kube.path("v1", "Event", meta["namespace"]), body=body)
    except ApiException as exc:
        log.warning("event_not_posted", reason=event.reason, status=exc.status)


def _reconcile_fresh(body: kopf.Body | Obj, memo_config: OperatorSettings, kube: Kube) -> tuple[Obj, Result]:
    """Reconcile from the stored object (the read-back loop may have moved its status since kopf's copy)."""
    meta = body["metadata"]
    fresh = kube.get(API_VERSION, KIND, meta["name"], meta["namespace"]) or dict(body)
    return fresh, reconcile(fresh, memo_config, kube)


@kopf.on.resume(*RESOURCE)
@kopf.on.create(*RESOURCE)
@kopf.on.update(*RESOURCE)
def reconcile_pipeline(body: kopf.Body, retry: int, memo: kopf.Memo, **_: Any) -> None:
    meta = body["metadata"]
    # The status is written inside the lock (not by kopf after the handler): a read-back right after this
    # reconcile must see its children's versions, or it would report the same change again.
    with LOCKS[meta["uid"]]:
        fresh, result = _reconcile_fresh(body, memo.config, memo.kube)
        memo.kube.patch_merge(API_VERSION, KIND, meta["name"], meta["namespace"], {"status": result.status}, "status")
    for event in result.events:
        post_event(memo.kube, fresh, event)
    if result.invalid:
        raise kopf.PermanentError(result.status["conditions"][0]["message"])
    if result.failing:
        names = ", ".join(f"{o.condition} ({o.reason})" for o in result.failing)
        raise kopf.TemporaryError(f"failing: {names}", delay=backoff(retry, memo.config.max_backoff_seconds))


def _comparable(status: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in (status or {}).items() if k != "lastReconcileTime"}


def read_back(obj: Obj, config: OperatorSettings, kube: Kube) -> None:
    meta = obj["metadata"]
    with LOCKS[meta["uid"]]:
        fresh, result = _reconcile_fresh(obj, config, kube)
        if STOP.is_set() or fresh["metadata"].get("deletionTimestamp") or result.invalid:
            return  # stopping: the stores' clients are being closed under this reconcile, its verdict is void
        if _comparable(result.status) == _comparable(fresh.get("status") or {}):
            return
        kube.patch_merge(API_VERSION, KIND, meta["name"], meta["namespace"], {"status": result.status}, "status")
    for event in result.events:
        post_event(kube, fresh, event)


def _read_back_safely(obj: Obj, config: OperatorSettings, kube: Kube) -> None:
    try:
        read_back(obj, config, kube)
    except Exception as exc:  # noqa: BLE001 - one pipeline's failure must not stop the others
        log.warning("readback_failed", namespace=obj["metadata"]["namespace"],
                    name=obj["metadata"]["name"], error=str(exc)[:200])


def readback_loop(config: OperatorSettings, kube: Kube) -> None:
    # A few pipelines at once: a store that times out must not delay the others' read-back by its timeout each.
    with ThreadPoolExecutor(max_workers=READBACK_WORKERS, thread_name_prefix="readback") as pool:
        while not STOP.wait(config.readback_seconds):
            try:
                pipelines = [p for ns in (config.namespaces or [None]) for p in kube.list(API_VERSION, KIND, ns)]
            except Exception as exc:  # noqa: BLE001 - keep the loop alive through API outages
                log.warning("readback_list_failed", error=str(exc)[:200])
                continue
            list(pool.map(lambda obj: _read_back_safely(obj, config, kube), pipelines))


def _platform_configmap(namespace: str, memo: kopf.Memo, **_: Any) -> bool:
    return bool(memo.config.platform_namespace) and namespace == memo.config.platform_namespace


@kopf.on.resume("", "v1", "configmaps", labels={platform.LABEL: "true"}, when=_platform_configmap)
@kopf.on.create("", "v1", "configmaps", labels={platform.LABEL: "true"}, when=_platform_configmap)
@kopf.on.update("", "v1", "configmaps", labels={platform.LABEL: "true"}, when=_platform_configmap, field="data")
def apply_platform(body: kopf.Body, retry: int, memo: kopf.Memo, **_: Any) -> None:
    kube: Kube = memo.kube
    configmap = dict(body)
    states = platform.apply_platform(kube, configmap)
    meta = body["metadata"]
    for type_, reason, message in platform.changes(platform.previous_states(configmap), states):
        post_event(kube, configmap, Event(type_, reason, message))
    kube.patch_merge("v1", "ConfigMap", meta["name"], meta["namespace"],
                     {"metadata": {"annotations": {platform.STATUS_ANNOTATION: platform.status_annotation(states)}}})
    held = [s for s in states if not s.applied]
    log.info("platform_applied", applied=len(states) - len(held), held=[f"{s.key}: {s.reason}" for s in held])
    if held:
        names = ", ".join(f"{s.key} ({s.reason})" for s in held)
        raise kopf.TemporaryError(f"held back: {names}", delay=backoff(retry, memo.config.max_backoff_seconds))
