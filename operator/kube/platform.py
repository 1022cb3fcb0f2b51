"""The platform's custom resources (Strimzi Kafka + KafkaNodePool, K8ssandraCluster, MongoDBCommunity),
applied by the operator rather than by Helm, so that one `helm install --wait` succeeds on a fresh cluster.

The chart renders them into a ConfigMap labelled `userpipeline.io/platform: "true"` (key `resources.yaml`)
in the operator's namespace. The upstream operators' admission webhooks refuse requests until their Pods
serve ("failed calling webhook ... connection refused"); Helm would fail the install then. The operator
applies each resource with server-side apply, owned by that ConfigMap (so `helm uninstall` removes them
through garbage collection), keeps those refused waiting and retries with backoff, and reports each
resource's state in the annotation `userpipeline.io/platform-status` and in Events on the ConfigMap.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import yaml

from userpipeline.operator.kube.client import ApiException, Kube, Obj
from userpipeline.operator.kube.parts import api_error

LABEL = "userpipeline.io/platform"
KEY = "resources.yaml"
STATUS_ANNOTATION = "userpipeline.io/platform-status"
MANAGER = "userpipeline-platform"
APPLIED = "Applied"
# Only these kinds are applied (the operator's RBAC allows no others either).
ALLOWED = {("kafka.strimzi.io/v1", "Kafka"), ("kafka.strimzi.io/v1", "KafkaNodePool"),
           ("k8ssandra.io/v1alpha1", "K8ssandraCluster"), ("mongodbcommunity.mongodb.com/v1", "MongoDBCommunity")}


@dataclass(frozen=True)
class ResourceState:
    key: str  # Kind/name
    reason: str  # Applied | WebhookNotReady | KindNotServed | Rejected | NotAllowed
    message: str

    @property
    def applied(self) -> bool:
        return self.reason == APPLIED


def _reason(exc: ApiException) -> str:
    text = exc.body or ""
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    if "failed calling webhook" in text:
        return "WebhookNotReady"
    return "KindNotServed" if exc.status == 404 else "Rejected"


def resources(configmap: Obj) -> list[Obj]:
    text = (configmap.get("data") or {}).get(KEY) or ""
    return [doc for doc in yaml.safe_load_all(text) if doc]


def apply_one(kube: Kube, doc: Obj, owner: Obj) -> ResourceState:
    meta = doc.setdefault("metadata", {})
    key = f"{doc.get('kind')}/{meta.get('name')}"
    if (doc.get("apiVersion"), doc.get("kind")) not in ALLOWED:
        return ResourceState(key, "NotAllowed", f"{doc.get('apiVersion')} {doc.get('kind')} is not a platform kind")
    meta["namespace"] = owner["namespace"]
    meta["ownerReferences"] = [{k: owner[k] for k in ("apiVersion", "kind", "name", "uid")}]
    try:
        kube.apply(doc, MANAGER)
    except ApiException as exc:
        return ResourceState(key, _reason(exc), api_error(exc)[:500])
    return ResourceState(key, APPLIED, "applied")


def apply_platform(kube: Kube, configmap: Obj) -> list[ResourceState]:
    meta = configmap["metadata"]
    owner = {"apiVersion": "v1", "kind": "ConfigMap", "name": meta["name"], "uid": meta["uid"],
             "namespace": meta["namespace"]}
    return [apply_one(kube, doc, owner) for doc in resources(configmap)]


def status_annotation(states: list[ResourceState]) -> str:
    return json.dumps({s.key: s.reason if s.applied else f"{s.reason}: {s.message}" for s in states}, sort_keys=True)


def previous_states(configmap: Obj) -> dict[str, Any]:
    try:
        return json.loads(((configmap["metadata"].get("annotations") or {}).get(STATUS_ANNOTATION)) or "{}")
    except ValueError:
        return {}


def changes(before: dict[str, Any], states: list[ResourceState]) -> list[tuple[str, str, str]]:
    """Events (type, reason, message) for the resources whose state changed since the last pass."""
    result = []
    for state in states:
        old = str(before.get(state.key, ""))
        if state.applied and old != APPLIED:
            result.append(("Normal", "PlatformApplied", f"{state.key} applied"))
        elif not state.applied and not old.startswith(state.reason):
            result.append(("Warning", "PlatformWaiting", f"{state.key} held back ({state.reason}): {state.message}"))
    return result
