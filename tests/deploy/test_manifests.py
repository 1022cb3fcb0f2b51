"""manifests/: every sample UserPipeline is accepted by a real kube-apiserver with the chart's CRD (server-side
dry run, strict field validation, CEL rules), is valid for the CRD's schema checked here (unknown fields
rejected) and for the pydantic spec model; the kind cluster config is what tools/cluster/kind.sh expects."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path

import jsonschema
import pydantic
import pytest
import yaml

from kube.controlplane import ControlPlane
from kube.resources import OUR_CRD, install_crds
from userpipeline.operator.kube.client import ApiException, Kube
from userpipeline.operator.spec import API_VERSION, KIND, UserPipeline, load_userpipeline, parse_duration

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = sorted((ROOT / "manifests" / "samples").glob("*.yaml"))
KUBE_SAMPLES = ("dev", "high-rate", "strict-retention")  # applied side by side in one namespace
CRD = ROOT / "charts" / "userpipeline" / "crds" / "userpipelines.userpipeline.io.yaml"
KIND_CONFIG = ROOT / "manifests" / "kind-cluster.yaml"


def strict(schema: dict) -> dict:
    """The CRD's structural schema as JSON Schema that rejects unknown fields, like `kubectl apply` does."""
    schema = copy.deepcopy(schema)
    nodes = [schema]
    while nodes:
        node = nodes.pop()
        if node.get("type") == "object" and "properties" in node \
                and not node.get("x-kubernetes-preserve-unknown-fields"):
            node.setdefault("additionalProperties", False)
        nodes.extend(node.get("properties", {}).values())
        if isinstance(node.get("items"), dict):
            nodes.append(node["items"])
    return schema


@pytest.fixture(scope="module")
def crd_validator() -> jsonschema.Draft7Validator:
    crd = yaml.safe_load(CRD.read_text())
    [version] = [v for v in crd["spec"]["versions"] if v["served"]]
    assert f"{crd['spec']['group']}/{version['name']}" == API_VERSION and crd["spec"]["names"]["kind"] == KIND
    return jsonschema.Draft7Validator(strict(version["schema"]["openAPIV3Schema"]))


def crd_errors(validator: jsonschema.Draft7Validator, doc: dict) -> list[str]:
    body = {key: value for key, value in doc.items() if key != "metadata"}  # metadata: the API server's own
    return [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(body)]


@pytest.fixture(scope="module")
def kube(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kube]:
    """A real etcd + kube-apiserver with the chart's CRD and a namespace `userpipeline` (about 5 s)."""
    plane = ControlPlane(tmp_path_factory.mktemp("kube"))
    try:
        plane.start()
        kube = Kube(plane.api_client())
        install_crds(kube, [OUR_CRD])
        kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "userpipeline"}})
        yield kube
    finally:
        plane.stop()


def server_dry_run(kube: Kube, doc: dict) -> dict:
    """`kubectl -n userpipeline apply --dry-run=server` with strict field validation: nothing is stored."""
    doc = {**doc, "metadata": {**doc["metadata"], "namespace": "userpipeline"}}
    path = kube.path(doc["apiVersion"], doc["kind"], "userpipeline")
    return kube.request("POST", path, query=[("dryRun", "All"), ("fieldValidation", "Strict")], body=doc)


@pytest.mark.parametrize("path", SAMPLES, ids=[p.stem for p in SAMPLES])
def test_sample_is_accepted_by_the_api_server(path: Path, kube: Kube) -> None:
    stored = server_dry_run(kube, yaml.safe_load(path.read_text()))
    assert stored["spec"]["topic"]["name"] == load_userpipeline(path).spec.topic.name


def test_the_api_server_rejects_a_typo_and_a_rule_violation(kube: Kube) -> None:
    doc = yaml.safe_load((ROOT / "manifests" / "samples" / "strict-retention.yaml").read_text())
    typo = copy.deepcopy(doc)
    typo["spec"]["producer"]["ratePerSec"] = 5
    with pytest.raises(ApiException) as raised:
        server_dry_run(kube, typo)
    assert raised.value.status == 400 and "ratePerSec" in str(raised.value.body)
    broken = copy.deepcopy(doc)
    broken["spec"]["retention"]["aggregates"] = "12h"
    with pytest.raises(ApiException) as raised:
        server_dry_run(kube, broken)
    assert raised.value.status == 422 and "must not be shorter than retention.profiles" in str(raised.value.body)


def test_the_kubernetes_samples_exist() -> None:
    assert {path.stem for path in SAMPLES} >= set(KUBE_SAMPLES)


@pytest.mark.parametrize("path", SAMPLES, ids=[p.stem for p in SAMPLES])
def test_sample_is_valid_for_the_crd_and_the_spec_model(path: Path, crd_validator) -> None:
    doc = yaml.safe_load(path.read_text())
    assert (doc["apiVersion"], doc["kind"]) == (API_VERSION, KIND)
    assert not crd_errors(crd_validator, doc), crd_errors(crd_validator, doc)
    pipeline = load_userpipeline(path)
    assert pipeline.metadata.name == doc["metadata"]["name"]
    assert "namespace" not in doc["metadata"]  # applied with `kubectl -n`, into the chart's namespace


def test_a_typo_is_rejected_by_both_checks(crd_validator) -> None:
    """The checks above would catch a misspelt field: the schema and the model both reject it."""
    doc = yaml.safe_load((ROOT / "manifests" / "samples" / "dev.yaml").read_text())
    doc["spec"]["producer"]["ratePerSec"] = doc["spec"]["producer"].pop("ratePerSecond")
    assert any("ratePerSec" in error for error in crd_errors(crd_validator, doc))
    with pytest.raises(pydantic.ValidationError, match="ratePerSec"):
        UserPipeline.model_validate(doc)


def test_a_rule_violation_is_rejected_by_the_model() -> None:
    """CEL rules (here: aggregates kept at least as long as profiles) run in the model as in the API server."""
    doc = yaml.safe_load((ROOT / "manifests" / "samples" / "strict-retention.yaml").read_text())
    doc["spec"]["retention"]["aggregates"] = "12h"
    with pytest.raises(pydantic.ValidationError, match="must not be shorter than retention.profiles"):
        UserPipeline.model_validate(doc)


def test_kubernetes_samples_can_run_side_by_side() -> None:
    """Each has its own name and topic (a topic has one KafkaTopic owner) and a dashboard."""
    pipelines = [load_userpipeline(ROOT / "manifests" / "samples" / f"{name}.yaml") for name in KUBE_SAMPLES]
    assert [p.metadata.name for p in pipelines] == list(KUBE_SAMPLES)
    assert len({p.spec.topic.name for p in pipelines}) == len(pipelines)
    assert all(p.spec.dashboard.enabled for p in pipelines)


def test_samples_differ_where_their_names_say() -> None:
    dev, high, strict_ = (load_userpipeline(ROOT / "manifests" / "samples" / f"{n}.yaml").spec for n in KUBE_SAMPLES)
    assert high.producer.rate_per_second >= 20 * dev.producer.rate_per_second
    assert high.topic.partitions > dev.topic.partitions and high.stream.executors > dev.stream.executors
    for field in ("profiles", "aggregates", "dead_letter"):
        assert parse_duration(getattr(strict_.retention, field)) < parse_duration(getattr(dev.retention, field))
    assert strict_.privacy.k_anonymity > dev.privacy.k_anonymity


def test_kind_config_is_a_one_node_kind_cluster() -> None:
    config = yaml.safe_load(KIND_CONFIG.read_text())
    assert (config["kind"], config["apiVersion"]) == ("Cluster", "kind.x-k8s.io/v1alpha4")
    assert [node["role"] for node in config["nodes"]] == ["control-plane"]
    # no host port mappings: cloud-provider-kind gives the Ingress its address
    assert not any(node.get("extraPortMappings") for node in config["nodes"])
    assert config["name"] == "userpipeline"
