"""Helpers for tests against the control plane: CRDs, namespaces, polling, events."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import yaml
from kubernetes import client

from userpipeline.operator.kube.client import ApiException, Kube
from harness.polling import wait_for  # noqa: F401 - used by the operator tests

ROOT = Path(__file__).resolve().parents[2]
# The project's shared material sits beside the clone (../shared), on developers' machines and in CI.
SHARED_CRDS = Path(os.environ.get("USERPIPELINE_SHARED_DIR", ROOT.parent / "shared")) / "crds"
OUR_CRD = ROOT / "charts" / "userpipeline" / "crds" / "userpipelines.userpipeline.io.yaml"
UPSTREAM_CRDS = [
    SHARED_CRDS / "strimzi" / "043-Crd-kafkatopic.yaml",
    SHARED_CRDS / "spark-operator" / "sparkoperator.k8s.io_sparkapplications.yaml",
]


def install_crds(kube: Kube, files: list[Path] | None = None, timeout: float = 60) -> list[str]:
    """Create the upstream CRDs (plain create: no managedFields for an 800 KB schema), apply ours,
    and wait until each is Established and discoverable."""
    crds: list[dict] = []
    for path in files or [*UPSTREAM_CRDS, OUR_CRD]:
        for doc in yaml.safe_load_all(path.read_text()):
            if not doc or doc.get("kind") != "CustomResourceDefinition":
                continue
            if path == OUR_CRD:
                kube.apply(doc, manager="test-harness")
            else:
                try:
                    kube.create(doc)
                except ApiException as exc:
                    if exc.status != 409:
                        raise
            crds.append(doc)
    for doc in crds:
        name = doc["metadata"]["name"]
        wait_for(lambda: _established(kube, name), timeout, what=f"CRD {name} Established")
        version = next(v["name"] for v in doc["spec"]["versions"] if v.get("served"))
        api_version = f"{doc['spec']['group']}/{version}"
        wait_for(lambda: _discoverable(kube, api_version), timeout, what=f"discovery of {api_version}")
    return [doc["metadata"]["name"] for doc in crds]


def _established(kube: Kube, name: str) -> bool:
    crd = kube.get("apiextensions.k8s.io/v1", "CustomResourceDefinition", name) or {}
    return any(c["type"] == "Established" and c["status"] == "True"
               for c in (crd.get("status") or {}).get("conditions") or [])


def _discoverable(kube: Kube, api_version: str) -> bool:
    try:
        kube.request("GET", f"/apis/{api_version}")
        return True
    except ApiException:
        return False


def new_namespace(kube: Kube, prefix: str = "t", labels: dict[str, str] | None = None) -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels or {}}})
    return name


def events_for(kube: Kube, namespace: str, name: str) -> list[dict]:
    events = kube.list("v1", "Event", namespace, fieldSelector=f"involvedObject.name={name}")
    return sorted(events, key=lambda e: e["metadata"]["creationTimestamp"])


def condition(obj: dict | None, type_: str) -> dict:
    for cond in (obj or {}).get("status", {}).get("conditions", []):
        if cond["type"] == type_:
            return cond
    return {}


def api_client(kubeconfig: Path) -> client.ApiClient:
    from kubernetes import config

    return config.new_client_from_config(config_file=str(kubeconfig))
