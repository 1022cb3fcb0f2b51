"""Helpers for tests against the control plane: CRDs, namespaces, polling, events."""

from __future__ import annotations

import tarfile
import uuid
from pathlib import Path

import yaml
from kubernetes import client

from userpipeline.operator.kube.client import ApiException, Kube
from harness.polling import wait_for  # noqa: F401 - used by the operator tests

ROOT = Path(__file__).resolve().parents[2]
OUR_CRD = ROOT / "charts" / "userpipeline" / "crds" / "userpipelines.userpipeline.io.yaml"
# Upstream material lives in the repository, nothing outside it is read: the operators' CRDs inside the
# vendored chart archives (charts/userpipeline/charts/VENDOR.md), the rest in tests/fixtures/upstream/
# (VERSIONS.md there says where each file comes from).
VENDORED_CHARTS = ROOT / "charts" / "userpipeline" / "charts"
UPSTREAM_FIXTURES = ROOT / "tests" / "fixtures" / "upstream"
SKAFFOLD_SCHEMA = UPSTREAM_FIXTURES / "schemas" / "skaffold-v4beta14.json"
CERT_MANAGER_CRDS = sorted((UPSTREAM_FIXTURES / "cert-manager-crds").glob("*.yaml"))


def upstream_file(name: str) -> Path:
    """A file of tests/fixtures/upstream/ (e.g. "schemas/skaffold-v4beta14.json"), failing with what to do."""
    path = UPSTREAM_FIXTURES / name
    if not path.exists():
        raise FileNotFoundError(f"{path} missing: vendor it into tests/fixtures/upstream/ and record it in VERSIONS.md")
    return path


def vendored_crds(chart: str, member_suffix: str, kinds: set[str] | None = None) -> list[dict]:
    """CRD documents from a vendored chart archive, e.g. ("strimzi-kafka-operator", "043-Crd-kafkatopic.yaml")."""
    archives = sorted(VENDORED_CHARTS.glob(f"{chart}-[0-9]*.tgz"))
    if len(archives) != 1:
        raise FileNotFoundError(f"expected one {chart}-<version>.tgz in {VENDORED_CHARTS}, found {archives}")
    docs = []
    with tarfile.open(archives[0]) as tar:
        for member in tar.getmembers():
            if member.isfile() and member.name.endswith(member_suffix):
                text = tar.extractfile(member).read().decode()
                docs += [d for d in yaml.safe_load_all(text) if d and d.get("kind") == "CustomResourceDefinition"
                         and (kinds is None or d["spec"]["names"]["kind"] in kinds)]
    if not docs:
        raise FileNotFoundError(f"no CRD {kinds or ''} in {archives[0].name} member *{member_suffix}")
    return docs


def upstream_crds() -> list[dict]:
    """The upstream CRDs the operator's children need: KafkaTopic and SparkApplication."""
    return [*vendored_crds("strimzi-kafka-operator", "/crds/043-Crd-kafkatopic.yaml"),
            *vendored_crds("spark-operator", "/crds/sparkoperator.k8s.io_sparkapplications.yaml")]


def _documents(source: Path | dict) -> list[dict]:
    if isinstance(source, dict):
        return [source]
    return [doc for doc in yaml.safe_load_all(source.read_text()) if doc]


def install_crds(kube: Kube, sources: list[Path | dict] | None = None, timeout: float = 60) -> list[str]:
    """Create the upstream CRDs (plain create: no managedFields for an 800 KB schema), apply ours,
    and wait until each is Established and discoverable. `sources`: files or CRD documents."""
    crds: list[dict] = []
    for source in sources or [*upstream_crds(), OUR_CRD]:
        for doc in _documents(source):
            if doc.get("kind") != "CustomResourceDefinition":
                continue
            if source == OUR_CRD:
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
