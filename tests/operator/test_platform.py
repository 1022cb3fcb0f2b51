"""The ordering solution: the chart's platform resources (rendered by helm from the real chart) are applied
by the operator, held back with a readable reason while an upstream webhook does not answer, and applied
once it is gone; the API server checks each against the upstream CRD schema (strict field validation)."""

from __future__ import annotations

import json
import subprocess

import yaml

OPERATOR_NAMESPACE, RELEASE = "userpipeline-system", "up"  # as in conftest.py
from kube.chart import CHART, SUBCHARTS, helm_binary
from kube.resources import events_for, wait_for
from userpipeline.operator.kube.client import Kube
from userpipeline.operator.kube.platform import STATUS_ANNOTATION

KINDS = {"Kafka": "kafka.strimzi.io/v1", "KafkaNodePool": "kafka.strimzi.io/v1",
         "K8ssandraCluster": "k8ssandra.io/v1alpha1", "MongoDBCommunity": "mongodbcommunity.mongodb.com/v1"}
DEAD_WEBHOOK = {
    "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
    "metadata": {"name": "dead-platform-webhook"},
    "webhooks": [{
        "name": "vplatform.userpipeline.test", "admissionReviewVersions": ["v1"], "sideEffects": "None",
        "failurePolicy": "Fail", "timeoutSeconds": 5,
        # An operator whose Pod does not serve yet: its Service has no backend.
        "clientConfig": {"service": {"namespace": "default", "name": "not-serving-yet", "port": 443}},
        "rules": [{"apiGroups": ["kafka.strimzi.io", "k8ssandra.io", "mongodbcommunity.mongodb.com"],
                   "apiVersions": ["*"], "operations": ["CREATE", "UPDATE"], "resources": ["*"]}],
    }],
}


def render_platform_configmap() -> dict:
    subcharts = [arg for chart in SUBCHARTS for arg in ("--set", f"{chart}.enabled=false")]
    out = subprocess.run([helm_binary(), "template", RELEASE, str(CHART), "--namespace", OPERATOR_NAMESPACE,
                          *subcharts, "-s", "templates/platform-configmap.yaml"],
                         check=True, capture_output=True, text=True).stdout
    return next(doc for doc in yaml.safe_load_all(out) if doc)


def platform_status(kube: Kube, name: str) -> dict:
    cm = kube.get("v1", "ConfigMap", name, OPERATOR_NAMESPACE) or {}
    return json.loads(((cm.get("metadata") or {}).get("annotations") or {}).get(STATUS_ANNOTATION) or "{}")


def test_platform_waits_for_webhooks_then_arrives(admin: Kube, platform_crds, operator) -> None:
    admin.apply(DEAD_WEBHOOK, manager="test")
    configmap = render_platform_configmap()
    name = configmap["metadata"]["name"]
    resources = [doc for doc in yaml.safe_load_all(configmap["data"]["resources.yaml"]) if doc]
    keys = {f"{doc['kind']}/{doc['metadata']['name']}" for doc in resources}
    assert {key.split("/")[0] for key in keys} == set(KINDS)
    try:
        admin.apply(configmap, manager="helm")
        held = wait_for(lambda: (s := platform_status(admin, name)) and set(s) == keys and
                        all(v.startswith("WebhookNotReady:") for v in s.values()) and s,
                        60, what="every platform resource held back by the webhook")
        assert all("failed calling webhook" in message for message in held.values()), held
        for key in keys:
            kind, obj_name = key.split("/")
            assert admin.get(KINDS[kind], kind, obj_name, OPERATOR_NAMESPACE) is None
        waiting = [e for e in events_for(admin, OPERATOR_NAMESPACE, name) if e["reason"] == "PlatformWaiting"]
        assert {e["message"].split(" ")[0] for e in waiting} == keys
    finally:
        admin.delete("admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration", "dead-platform-webhook")

    wait_for(lambda: platform_status(admin, name) == {key: "Applied" for key in keys}, 60,
             what="every platform resource applied once the webhook is gone")
    uid = admin.get("v1", "ConfigMap", name, OPERATOR_NAMESPACE)["metadata"]["uid"]
    for key in keys:
        kind, obj_name = key.split("/")
        stored = admin.get(KINDS[kind], kind, obj_name, OPERATOR_NAMESPACE)
        assert stored["metadata"]["ownerReferences"][0]["uid"] == uid  # helm uninstall removes them (GC)
    applied = [e for e in events_for(admin, OPERATOR_NAMESPACE, name) if e["reason"] == "PlatformApplied"]
    assert len(applied) == len(keys)
