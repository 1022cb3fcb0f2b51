"""One reconcile of a UserPipeline: every part runs, whatever the others do; the result is a status
and the Events to post. Kopf-free, so it is the same code in the handler, the tests and the benchmark."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from userpipeline.operator.kube import cassandra_ttl, dashboard, mongo_health, producer, purge, stream, topics
from userpipeline.operator.kube.client import Kube
from userpipeline.operator.kube.parts import Context, Outcome, Part, failed
from userpipeline.operator.kube.settings import OperatorSettings
from userpipeline.operator.kube.status import READY, Event, conditions, effective, events
from userpipeline.operator.spec import UserPipelineSpec

PARTS: list[tuple[str, Part]] = [
    (producer.CONDITION, producer.reconcile),
    (topics.CONDITION, topics.reconcile),
    (stream.CONDITION, stream.reconcile),
    (purge.CONDITION, purge.reconcile),
    (dashboard.CONDITION, dashboard.reconcile),
    (cassandra_ttl.CONDITION, cassandra_ttl.reconcile),
    (mongo_health.CONDITION, mongo_health.reconcile),
]


@dataclass
class Result:
    status: dict[str, Any]
    events: list[Event] = field(default_factory=list)
    failing: list[Outcome] = field(default_factory=list)  # apply failures, retried; not the pending readbacks
    invalid: bool = False


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _run(condition: str, part: Part, ctx: Context) -> Outcome:
    try:
        return part(ctx)
    except Exception as exc:  # noqa: BLE001 - a bug in one part must not stop the others
        return failed(condition, "InternalError", f"{type(exc).__name__}: {exc}")


def reconcile(body: Mapping[str, Any], settings: OperatorSettings, kube: Kube) -> Result:
    meta, status = body["metadata"], dict(body.get("status") or {})
    generation, now = int(meta.get("generation", 0)), _now()
    previous = list(status.get("conditions") or [])
    try:
        spec = UserPipelineSpec.model_validate(dict(body.get("spec") or {}))
    except ValidationError as exc:
        # The CRD's schema mirrors the model, so this means a CRD older than the operator: no retry helps.
        message = " ".join(str(exc).split())[:1000]
        ready_condition = {"type": READY, "status": "False", "reason": "SpecInvalid", "message": message,
                           "observedGeneration": generation, "lastTransitionTime": now}
        others = [c for c in previous if c.get("type") != READY]
        return Result({"observedGeneration": generation, "lastReconcileTime": now,
                       "conditions": [ready_condition, *others]},
                      [Event("Warning", "SpecInvalid", message)], invalid=True)
    ctx = Context(meta["name"], meta["namespace"], meta["uid"], spec, settings, kube,
                  dict(status.get("children") or {}))
    outcomes = [_run(condition, part, ctx) for condition, part in PARTS]
    children = dict(status.get("children") or {})
    for outcome in outcomes:
        children.update(outcome.versions)
    new_status = {
        "observedGeneration": generation,
        "lastReconcileTime": now,
        "conditions": conditions(previous, outcomes, generation, now),
        "effective": effective(dict(status.get("effective") or {}), outcomes),
        "children": children,
    }
    return Result(new_status, events(previous, outcomes), [o for o in outcomes if not o.ok and not o.pending])
