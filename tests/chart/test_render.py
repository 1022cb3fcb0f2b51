"""The chart renders (helm lint --strict, helm template) with the defaults and the value sets users reach for,
and every rendered document is valid: built-in kinds against Kubernetes' schema (strict: unknown fields are
errors), custom resources (ours, and those handed to the operator) against the CRDs the chart installs."""

from __future__ import annotations

import json

import pytest

from kube.chart import CHART, SUBCHARTS
from kube.render import (CrdSchemas, all_problems, by_kind, containers, crds_in, helm, named, ours,
                         platform_resources, render)

PARENT_REFS = [{"name": "gateway", "namespace": "default"}]
VALUE_SETS = {
    "defaults": {},
    "operators-off": {chart: {"enabled": False} for chart in SUBCHARTS},
    "ingress-class": {"dashboard": {"ingress": {"className": "nginx"}}},
    "httproute": {"dashboard": {"httpRoute": {"enabled": True, "parentRefs": PARENT_REFS}}},
    "existing-secrets": {"hmac": {"existingSecret": "my-hmac"}},
    "numeric-tag": {"image": {"tag": 2}, "sparkImage": {"tag": 3}},
    "pipeline": {"pipeline": {"create": True, "name": "users",
                              "spec": {"producer": {"ratePerSecond": 5}, "dashboard": {"host": "users.local"}}}},
    "external-stores": {"kafka": {"external": {"bootstrap": "kafka.example:9092"}},
                        "cassandra": {"external": {"hosts": "cassandra.example:9142", "secretName": "my-cassandra",
                                                   "usernameKey": "user", "passwordKey": "pass"}},
                        "mongodb": {"external": {"secretName": "my-mongo", "uriKey": "uri"}},
                        **{chart: {"enabled": False} for chart in SUBCHARTS if chart != "spark-operator"}},
}


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[dict]]:
    return {name: render(values) for name, values in VALUE_SETS.items()}


@pytest.fixture(scope="module")
def schemas() -> CrdSchemas:
    """The CRDs the chart installs (ours and the upstream subcharts'), as rendered with --include-crds."""
    return CrdSchemas(crds_in(render(None, "--include-crds")))


def operator_env(docs: list[dict]) -> dict[str, str]:
    deployment = named(docs, "Deployment", "userpipeline-operator")
    container = containers(deployment)[0]
    return {e["name"]: e.get("value") for e in container["env"]}


def test_helm_lint_strict() -> None:
    out = helm("lint", "--strict", str(CHART), "--kube-version", "1.36.3")
    assert "1 chart(s) linted, 0 chart(s) failed" in out.stdout, out.stdout


@pytest.mark.parametrize("name", list(VALUE_SETS))
def test_every_rendered_document_is_valid(name: str, rendered, schemas: CrdSchemas) -> None:
    docs = rendered[name]
    assert docs, f"{name}: nothing rendered"
    # cert-manager's Issuer/Certificate (K8ssandra's webhook certificates): a prerequisite, checked on install
    problems = all_problems(docs, schemas, externals=("cert-manager.io",))
    problems += [p for r in platform_resources(docs) for p in schemas.problems(r)]
    assert not problems, "\n".join(problems)


def test_the_checks_are_real(schemas: CrdSchemas, rendered) -> None:
    """The checks above are real: the schemas are there, and a wrong field is reported."""
    kinds = {kind for _, kind in schemas.kinds()}
    assert {"Kafka", "KafkaNodePool", "KafkaTopic", "K8ssandraCluster", "MongoDBCommunity", "SparkApplication",
            "UserPipeline"} <= kinds
    kafka = next(r for r in platform_resources(rendered["defaults"]) if r["kind"] == "Kafka")
    broken = {**kafka, "spec": {**kafka["spec"], "kafka": {**kafka["spec"]["kafka"], "replicas": "one"}}}
    assert any("replicas" in p for p in schemas.problems(broken)), schemas.problems(broken)
    operator = named(rendered["defaults"], "Deployment", "userpipeline-operator")
    typo = {**operator, "spec": {**operator["spec"], "replica": 1}}
    assert any("replica" in p for p in all_problems([typo], schemas)), "unknown fields of built-in kinds are caught"


def test_defaults_render_the_platform(rendered) -> None:
    docs = rendered["defaults"]
    assert {r["kind"] for r in platform_resources(docs)} == {"Kafka", "KafkaNodePool", "K8ssandraCluster",
                                                             "MongoDBCommunity"}
    # Helm itself creates nothing an upstream webhook guards (the ordering solution, README "Ordering")
    guarded = {"Kafka", "KafkaNodePool", "K8ssandraCluster", "MongoDBCommunity", "SparkApplication"}
    assert not [d["metadata"]["name"] for d in docs if d["kind"] in guarded]
    assert len(by_kind(docs, "ValidatingWebhookConfiguration") + by_kind(docs, "MutatingWebhookConfiguration")) >= 3
    assert containers(named(docs, "Deployment", "userpipeline-operator"))[0]["image"] == "userpipeline:0.1.0"
    hmac = named(ours(docs), "Secret", "-hmac")
    assert hmac["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"


def test_every_container_we_own_has_probes_resources_and_a_restricted_context(rendered) -> None:
    for name, docs in rendered.items():
        for doc in ours(docs):
            for container in containers(doc):
                where = f"{name}: {doc['kind']}/{doc['metadata']['name']}/{container['name']}"
                assert container.get("resources", {}).get("requests"), f"{where}: no resource requests"
                assert container.get("resources", {}).get("limits", {}).get("memory"), f"{where}: no memory limit"
                security = container.get("securityContext") or {}
                assert security.get("allowPrivilegeEscalation") is False, where
                assert security.get("capabilities", {}).get("drop") == ["ALL"], where
                if doc["kind"] == "Deployment":
                    assert container.get("readinessProbe") and container.get("livenessProbe"), f"{where}: probes"


def test_operators_off_leaves_only_ours(rendered) -> None:
    docs = rendered["operators-off"]
    assert not by_kind(docs, "ValidatingWebhookConfiguration") + by_kind(docs, "MutatingWebhookConfiguration")
    assert [d["metadata"]["name"] for d in by_kind(docs, "Deployment")] == ["up-userpipeline-operator"]
    assert platform_resources(docs), "the platform resources still go to the operator"


def test_ingress_class_reaches_the_operator(rendered) -> None:
    assert operator_env(rendered["ingress-class"])["USERPIPELINE_OPERATOR_INGRESS_CLASS_NAME"] == "nginx"
    assert operator_env(rendered["defaults"])["USERPIPELINE_OPERATOR_INGRESS_CLASS_NAME"] == ""


def test_httproute_on_reaches_the_operator_and_its_rbac(rendered) -> None:
    env = operator_env(rendered["httproute"])
    assert env["USERPIPELINE_OPERATOR_HTTP_ROUTE_ENABLED"] == "true"
    assert json.loads(env["USERPIPELINE_OPERATOR_HTTP_ROUTE_PARENT_REFS"]) == PARENT_REFS
    roles = by_kind(ours(rendered["httproute"]), "ClusterRole") + by_kind(ours(rendered["httproute"]), "Role")
    rules = [rule for role in roles for rule in role.get("rules", [])]
    assert any("httproutes" in rule.get("resources", []) and "create" in rule.get("verbs", []) for rule in rules)


def test_existing_secrets_are_used_not_generated(rendered) -> None:
    docs = rendered["existing-secrets"]
    assert not [s for s in by_kind(ours(docs), "Secret") if s["metadata"]["name"].endswith("-hmac")]
    [pipeline] = by_kind(rendered["pipeline"], "UserPipeline")  # the chart's own key by default ...
    assert pipeline["spec"]["privacy"]["keySecret"] == "up-userpipeline-hmac"
    with_own_key = render({**VALUE_SETS["existing-secrets"], **VALUE_SETS["pipeline"]})
    [pipeline] = by_kind(with_own_key, "UserPipeline")  # ... or yours
    assert pipeline["spec"]["privacy"]["keySecret"] == "my-hmac"


def test_numeric_image_tag_renders_as_text(rendered) -> None:
    docs = rendered["numeric-tag"]
    env = operator_env(docs)
    assert containers(named(docs, "Deployment", "userpipeline-operator"))[0]["image"] == "userpipeline:2"
    assert env["USERPIPELINE_OPERATOR_IMAGE"] == "userpipeline:2"
    assert env["USERPIPELINE_OPERATOR_SPARK_IMAGE"] == "userpipeline-spark:3"
    on_command_line = render(None, "--set", "image.tag=2")  # --set parses 2 as a number too
    assert containers(named(on_command_line, "Deployment", "userpipeline-operator"))[0]["image"] == "userpipeline:2"
    assert "%!" not in json.dumps(docs)


def test_pipeline_create_renders_a_userpipeline_keyed_by_the_chart_secret(rendered) -> None:
    [pipeline] = by_kind(rendered["pipeline"], "UserPipeline")
    assert pipeline["metadata"]["name"] == "users"
    assert pipeline["spec"]["privacy"]["keySecret"] == "up-userpipeline-hmac"
    assert pipeline["spec"]["producer"]["ratePerSecond"] == 5


def test_external_stores_render_no_platform_and_wire_the_given_ones(rendered) -> None:
    docs = rendered["external-stores"]
    assert platform_resources(docs) == []
    env = operator_env(docs)
    assert env["USERPIPELINE_OPERATOR_KAFKA_BOOTSTRAP"] == "kafka.example:9092"
    stores = json.loads(env["USERPIPELINE_OPERATOR_STORES"])
    assert stores["cassandra_hosts"] == {"value": "cassandra.example:9142"}
    assert stores["cassandra_username"] == {"secret": "my-cassandra", "key": "user"}
    assert stores["cassandra_password"] == {"secret": "my-cassandra", "key": "pass"}
    assert stores["mongo_uri"] == {"secret": "my-mongo", "key": "uri"}


def test_default_wiring_reads_the_secrets_the_upstream_operators_make(rendered) -> None:
    stores = json.loads(operator_env(rendered["defaults"])["USERPIPELINE_OPERATOR_STORES"])
    assert stores["cassandra_hosts"] == {"value": "up-userpipeline-dc1-service"}
    assert stores["cassandra_username"] == {"secret": "up-userpipeline-superuser", "key": "username"}
    assert stores["mongo_uri"] == {"secret": "up-userpipeline-mongodb-admin-userpipeline",
                                   "key": "connectionString.standard"}
