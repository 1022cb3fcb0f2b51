"""The committed CRD is exactly what the spec model generates, and its schema is structural."""

from __future__ import annotations

import yaml

from kube.resources import OUR_CRD
from userpipeline.operator import crd
from userpipeline.operator.spec import UserPipelineSpec


def test_committed_crd_matches_the_model() -> None:
    assert OUR_CRD.read_text() == crd.render(), (
        "charts/userpipeline/crds/userpipelines.userpipeline.io.yaml is stale: run "
        "`python -m userpipeline.operator.crd > charts/userpipeline/crds/userpipelines.userpipeline.io.yaml`"
    )


def _walk(node: dict, path: str = "spec"):
    yield path, node
    for name, child in node.get("properties", {}).items():
        yield from _walk(child, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        yield from _walk(node["items"], f"{path}[]")


def test_schema_is_structural_documented_and_defaulted() -> None:
    doc = yaml.safe_load(OUR_CRD.read_text())
    spec = doc["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    for path, node in _walk(spec):
        assert "type" in node, f"{path} has no type"
        assert not {"$ref", "$defs", "anyOf", "allOf", "title", "additionalProperties"} & node.keys(), path
        if not path.endswith("[]"):
            assert node.get("description"), f"{path} has no description"
            assert "default" in node, f"{path} has no default"
    assert spec["default"] == UserPipelineSpec().model_dump(by_alias=True, mode="json")


def test_every_model_rule_reaches_the_crd() -> None:
    from userpipeline.operator.spec import model

    doc = yaml.safe_load(OUR_CRD.read_text())
    spec = doc["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    in_crd = {(v["rule"], v["message"]) for _, node in _walk(spec) for v in node.get("x-kubernetes-validations", [])}
    for cls in (model.Source, model.Topic, model.Retention, model.Stream, model.Dashboard):
        for rule in cls.CEL_RULES:
            assert (rule.rule, rule.message) in in_crd, rule.message
