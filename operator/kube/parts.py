"""What every part of a reconcile shares: the context it gets, the outcome it returns, child helpers.

A part reconciles one concern (producer, topics, streaming job, purge, Cassandra TTL, MongoDB retention)
and reports it as one status condition. Parts never raise: failures become an outcome with ok=False,
so one failing part does not stop the others.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog

from userpipeline.operator.kube.client import ApiException, Kube, Obj
from userpipeline.operator.kube.settings import OperatorSettings
from userpipeline.operator.spec import API_VERSION, KIND, UserPipelineSpec

log = structlog.get_logger("operator")


@dataclass(frozen=True)
class Context:
    name: str
    namespace: str
    uid: str
    spec: UserPipelineSpec
    settings: OperatorSettings
    kube: Kube
    # spec versions of the children as last recorded in status (kind/name -> spec_version), to tell changes apart
    known_versions: dict[str, str] = field(default_factory=dict)
    # What one reconcile learns once and its parts share (e.g. MongoDB unreachable: one timeout, not two).
    memo: dict[str, Any] = field(default_factory=dict, compare=False)

    def child_name(self, suffix: str) -> str:
        return f"{self.name}-{suffix}"

    def labels(self, component: str) -> dict[str, str]:
        return {
            "app.kubernetes.io/name": "userpipeline",
            "app.kubernetes.io/instance": self.name,
            "app.kubernetes.io/component": component,
            "app.kubernetes.io/managed-by": "userpipeline-operator",
            "app.kubernetes.io/part-of": "userpipeline",  # the chart's NetworkPolicies select on it
        }

    def metadata(self, name: str, component: str, labels: dict[str, str] | None = None) -> Obj:
        owner = {"apiVersion": API_VERSION, "kind": KIND, "name": self.name, "uid": self.uid,
                 "controller": True, "blockOwnerDeletion": True}
        return {"name": name, "namespace": self.namespace, "labels": {**self.labels(component), **(labels or {})},
                "ownerReferences": [owner]}


# Reasons of parts that are applied but whose children do not work (yet): read back on a timer.
PENDING_REASONS = {"NotAvailable", "NotReady", "NotRunning", "StreamStalled", "NoDataYet", "NoData", "ProducerPaused"}


@dataclass
class Outcome:
    condition: str
    ok: bool
    reason: str
    message: str
    effective: dict[str, Any] = field(default_factory=dict)
    changes: list[str] = field(default_factory=list)  # human-readable, one Event each
    versions: dict[str, str] = field(default_factory=dict)  # kind/name -> spec_version after apply
    stored: dict[str, Obj] = field(default_factory=dict)  # kind/name -> the object as the API server returned it
    # Applied, but what was made does not work (yet): not retried by the handler, read back on a timer.
    pending: bool = False

    def not_working(self, reason: str, message: str) -> Outcome:
        """The same outcome, turned into 'applied but not working' (the effective values still hold)."""
        assert reason in PENDING_REASONS, reason
        self.ok, self.pending, self.reason, self.message = False, True, reason, message
        return self


Part = Callable[[Context], Outcome]


def child_key(obj: Obj) -> str:
    return f"{obj['kind']}/{obj['metadata']['name']}"


def spec_version(obj: Obj) -> str:
    """What moves when the object's spec changes: its generation where it has one (a controller's status
    update moves the resourceVersion only), else its resourceVersion (ConfigMaps, Roles, Services...)."""
    meta = obj["metadata"]
    return f"g{meta['generation']}" if meta.get("generation") else meta["resourceVersion"]


def apply_children(ctx: Context, condition: str, objects: list[Obj], summary: str,
                   effective: dict[str, Any] | None = None) -> Outcome:
    """Server-side apply each object; a child whose spec version (spec_version) moved counts as a change.

    An unchanged apply is a no-op in the API server, so re-running after a restart or a retry changes
    nothing and reports nothing; nor does a controller updating a child's status.
    """
    outcome = Outcome(condition, True, "Applied", summary, dict(effective or {}))
    changed = []
    for obj in objects:
        key = child_key(obj)
        try:
            stored = _create_once(ctx, obj) if obj["kind"] in CREATE_ONCE else ctx.kube.apply(obj)
        except ApiException as exc:
            return failed(condition, "ApplyFailed", f"{key}: {api_error(exc)}")
        if stored is None:
            continue
        outcome.stored[key] = stored
        version = spec_version(stored)
        outcome.versions[key] = version
        if ctx.known_versions.get(key) != version:
            changed.append(key if key in ctx.known_versions else f"{key} (new)")
    if changed:
        outcome.changes.append(f"{summary}; changed {', '.join(changed)}")
    return outcome


# Kinds whose spec is (mostly) immutable and gets fields from admission (a PVC's storageClassName):
# re-applying would try to take those back, so they are created once and then left alone.
CREATE_ONCE = {"PersistentVolumeClaim"}


def _create_once(ctx: Context, obj: Obj) -> Obj | None:
    """The new object, or the stored one when it exists already."""
    try:
        return ctx.kube.create(obj)
    except ApiException as exc:
        if exc.status != 409:
            raise
        meta = obj["metadata"]
        return ctx.kube.get(obj["apiVersion"], obj["kind"], meta["name"], meta["namespace"])


def failed(condition: str, reason: str, message: str) -> Outcome:
    log.warning("part_failed", part=condition, reason=reason, message=message)
    return Outcome(condition, False, reason, message)


def api_error(exc: ApiException) -> str:
    """The API server's own message (e.g. a webhook's or RBAC's), not the whole HTTP dump."""
    try:
        return f"{exc.status} {json.loads(exc.body or '')['message']}"
    except (TypeError, ValueError, KeyError):
        return f"{exc.status} {exc.reason}"
