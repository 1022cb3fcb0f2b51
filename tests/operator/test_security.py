"""Least privilege and the restricted Pod Security Standard, checked by the API server itself."""

from __future__ import annotations

import pytest

from kube.chart import render_operator
from kube.pipelines import child, pipeline, wait_ready
from kube.resources import new_namespace
from userpipeline.operator.kube.client import ApiException, Kube

RESTRICTED = {"pod-security.kubernetes.io/enforce": "restricted",
              "pod-security.kubernetes.io/enforce-version": "latest"}


def admit_pod(kube: Kube, namespace: str, name: str, pod_spec: dict) -> None:
    """Dry-run create of a Pod: PodSecurity admission runs, nothing is stored (no kubelet here anyway)."""
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": namespace}, "spec": pod_spec}
    path = kube.path("v1", "Pod", namespace)
    kube.request("POST", path, query=[("dryRun", "All"), ("fieldValidation", "Strict")], body=pod)


@pytest.fixture(scope="module")
def restricted_namespace(admin: Kube) -> str:
    return new_namespace(admin, "restricted", RESTRICTED)


def test_the_namespace_really_enforces_restricted(admin: Kube, restricted_namespace: str) -> None:
    with pytest.raises(ApiException) as denied:
        admit_pod(admin, restricted_namespace, "naive", {"containers": [{"name": "c", "image": "busybox"}]})
    assert "violates PodSecurity" in denied.value.body


def test_operator_pod_meets_restricted(admin: Kube, restricted_namespace: str) -> None:
    deployment = next(d for d in render_operator("up", restricted_namespace) if d["kind"] == "Deployment")
    admit_pod(admin, restricted_namespace, "operator", deployment["spec"]["template"]["spec"])


def test_pipeline_pods_meet_restricted(admin: Kube, operator, stores, restricted_namespace: str) -> None:
    ns = stores.namespace
    admin.create(pipeline("pss", ns))
    wait_ready(admin, "pss", ns)
    producer = child(admin, ns, "pss", "producer", "Deployment")["spec"]["template"]["spec"]
    purge = child(admin, ns, "pss", "purge", "CronJob")["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    admit_pod(admin, restricted_namespace, "producer", producer)
    admit_pod(admin, restricted_namespace, "purge", purge)
    dashboard = child(admin, ns, "pss", "dashboard", "Deployment")["spec"]["template"]["spec"]
    admit_pod(admin, restricted_namespace, "dashboard", dashboard)


def test_operator_account_reads_only_the_store_secrets(admin: Kube, as_operator: Kube, stores) -> None:
    assert as_operator.get("v1", "Secret", "userpipeline-cassandra", stores.namespace) is not None
    admin.apply({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "unrelated", "namespace": stores.namespace},
                 "stringData": {"token": "x"}})
    denied = []
    for attempt in (lambda: as_operator.get("v1", "Secret", "unrelated", stores.namespace),
                    lambda: as_operator.list("v1", "Secret", stores.namespace),
                    lambda: as_operator.delete("v1", "Secret", "unrelated", stores.namespace),
                    lambda: as_operator.list("v1", "Pod", stores.namespace)):
        with pytest.raises(ApiException) as caught:
            attempt()
        denied.append(caught.value.status)
    assert denied == [403, 403, 403, 403]
