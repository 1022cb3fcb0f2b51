"""`helm install` of the whole chart, upstream operators on, into a real kube-apiserver + kube-controller-manager
(cert-manager's CRDs present, no kubelet): the upstream CRDs, RBAC, Deployments and webhook configurations are
created for real and the Deployments get real Pods. The upstream webhooks never answer here, so the test shows
what the ordering solution does meanwhile, then plays the upstream operators' part and shows the platform and
a UserPipeline arriving, working, and reporting a missing part. The release namespace enforces the restricted
Pod Security Standard.

The tests build on each other, in file order, on one control plane and one release (module fixtures)."""

from __future__ import annotations

import base64
import json
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from kube.chart import CHART
from kube.controlplane import WORKLOADS, ControlPlane
from kube.kubelet import KubeletStandIn
from kube.operator_process import OperatorProcess
from kube.pipelines import create_profiles_table
from kube.render import containers, helm, named, render
from kube.resources import CERT_MANAGER_CRDS, condition, install_crds, wait_for
from userpipeline.operator.kube.client import ApiException, Kube
from userpipeline.operator.kube.platform import STATUS_ANNOTATION

RELEASE = NAMESPACE = "userpipeline"  # fullname = "userpipeline"; the Spark Operator's default job namespace
PIPELINE = "users"
RESTRICTED = {"pod-security.kubernetes.io/enforce": "restricted",
              "pod-security.kubernetes.io/enforce-version": "latest"}
OURS = "app.kubernetes.io/name=userpipeline"  # the chart's pods and the operator's children
PLATFORM = {"Kafka": "kafka.strimzi.io/v1", "KafkaNodePool": "kafka.strimzi.io/v1",
            "K8ssandraCluster": "k8ssandra.io/v1alpha1", "MongoDBCommunity": "mongodbcommunity.mongodb.com/v1"}
CUSTOM_RESOURCES = {**PLATFORM, "KafkaTopic": "kafka.strimzi.io/v1",
                    "SparkApplication": "sparkoperator.k8s.io/v1beta2", "UserPipeline": "userpipeline.io/v1alpha1"}
WEBHOOK_KINDS = ("ValidatingWebhookConfiguration", "MutatingWebhookConfiguration")
ADMISSION = "admissionregistration.k8s.io/v1"
# Fast retries and read-back (the chart's defaults are for real clusters).
# No data flows on this control plane (no kubelet): Ready means the parts work (flow_seconds 0).
OPERATOR_OVERRIDES = {"USERPIPELINE_OPERATOR_MAX_BACKOFF_SECONDS": "2", "USERPIPELINE_OPERATOR_READBACK_SECONDS": "1",
                      "USERPIPELINE_OPERATOR_FLOW_SECONDS": "0",
                      "USERPIPELINE_OPERATOR_STORE_TIMEOUT_SECONDS": "3"}


@dataclass(frozen=True)
class Release:
    plane: ControlPlane
    admin: Kube
    keyspace: str
    database: str
    mongo_uri: str
    install: subprocess.CompletedProcess  # `helm install --wait`


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    control_plane = ControlPlane(tmp_path_factory.mktemp("kube"), controllers=WORKLOADS)
    try:
        control_plane.start()
        install_crds(Kube(control_plane.api_client()), CERT_MANAGER_CRDS)  # cert-manager: K8ssandra's prerequisite
        yield control_plane
    finally:
        control_plane.stop()


@pytest.fixture(scope="module")
def release(plane: ControlPlane, cassandra, mongo, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Release]:
    admin = Kube(plane.api_client())
    suffix = uuid.uuid4().hex[:8]
    keyspace, database = f"ks_{suffix}", f"db_{suffix}"
    create_profiles_table(cassandra, keyspace)  # as the streaming job would, on its first start
    admin.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE, "labels": RESTRICTED}})
    values = {"cassandra": {"keyspace": keyspace}, "mongodb": {"database": database},
              "pipeline": {"create": True, "name": PIPELINE, "spec": {"dashboard": {"host": "users.local"}}}}
    # The chart's own wiring (K8ssandra's and MCK's Secrets), but Cassandra's host is the test's real one:
    # K8ssandra's Service name resolves only inside a cluster.
    rendered = render(values, release=RELEASE, namespace=NAMESPACE)
    operator_env = containers(named(rendered, "Deployment", "userpipeline-operator"))[0]["env"]
    wiring = json.loads(next(e["value"] for e in operator_env if e["name"] == "USERPIPELINE_OPERATOR_STORES"))
    wiring["cassandra_hosts"] = {"value": cassandra.contact}
    path = tmp_path_factory.mktemp("values") / "values.yaml"
    path.write_text(yaml.safe_dump({**values, "operator": {"storesOverride": wiring}}))
    # The stand-in reports every Pod of the namespace Running and Ready, as a kubelet would once the images
    # run; the Services still get no endpoints, so the upstream webhooks still never answer.
    with KubeletStandIn(admin, NAMESPACE):
        install = helm("install", RELEASE, str(CHART), "--namespace", NAMESPACE, "--kubeconfig",
                       str(plane.kubeconfig), "-f", str(path), "--wait", "--timeout", "150s", check=False)
        yield Release(plane, admin, keyspace, database, mongo.uri, install)


@pytest.fixture(scope="module")
def operator(release: Release) -> Iterator[OperatorProcess]:
    """Our operator, outside the cluster but as the chart's ServiceAccount (the chart's RBAC) with the
    settings of the chart's Deployment."""
    admin, plane = release.admin, release.plane
    deployment = admin.get("apps/v1", "Deployment", f"{RELEASE}-operator", NAMESPACE)
    pod = deployment["spec"]["template"]["spec"]
    env = {e["name"]: e["value"] for e in pod["containers"][0]["env"] if "value" in e}
    env["USERPIPELINE_OPERATOR_PLATFORM_NAMESPACE"] = NAMESPACE  # the Deployment's fieldRef
    token = plane.service_account_token(NAMESPACE, pod["serviceAccountName"])
    kubeconfig = plane.token_kubeconfig(plane.home / "operator.kubeconfig", token)
    process = OperatorProcess(kubeconfig, plane.home / "operator.log", {**env, **OPERATOR_OVERRIDES})
    process.start()
    yield process
    process.stop()


# -- helpers ----------------------------------------------------------------------------------------------
def platform_status(admin: Kube) -> dict[str, str]:
    cm = admin.get("v1", "ConfigMap", f"{RELEASE}-platform", NAMESPACE) or {}
    return json.loads(((cm.get("metadata") or {}).get("annotations") or {}).get(STATUS_ANNOTATION) or "{}")


def webhook_configurations(admin: Kube) -> list[tuple[str, str]]:
    return [(kind, w["metadata"]["name"]) for kind in WEBHOOK_KINDS for w in admin.list(ADMISSION, kind)]


def pods_of(admin: Kube, selector: str) -> list[dict]:
    return admin.list("v1", "Pod", NAMESPACE, labelSelector=selector)


def secret(name: str, data: dict[str, str]) -> dict:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": NAMESPACE},
            "type": "Opaque", "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}}


def set_status(admin: Kube, api_version: str, kind: str, name: str, status: dict) -> None:
    admin.patch_merge(api_version, kind, name, NAMESPACE, {"status": status}, "status")


def pipeline(admin: Kube) -> dict:
    return admin.get("userpipeline.io/v1alpha1", "UserPipeline", PIPELINE, NAMESPACE) or {}


def dry_run_create(admin: Kube, obj: dict) -> dict:
    path = admin.path(obj["apiVersion"], obj["kind"], NAMESPACE)
    return admin.request("POST", path, query=[("dryRun", "All"), ("fieldValidation", "Strict")], body=obj)


def refusal(admin: Kube, obj: dict) -> str:
    with pytest.raises(ApiException) as info:
        dry_run_create(admin, obj)
    body = info.value.body
    text = body.decode() if isinstance(body, bytes) else str(body)
    try:
        return json.loads(text)["message"]
    except (ValueError, KeyError):
        return text


# -- the install -----------------------------------------------------------------------------------------
def test_one_helm_install_wait_succeeds(release: Release) -> None:
    assert release.install.returncode == 0, release.install.stderr[-3000:]
    listed = json.loads(helm("list", "-n", NAMESPACE, "--kubeconfig", str(release.plane.kubeconfig),
                             "-o", "json").stdout)
    assert [(r["name"], r["status"]) for r in listed] == [(RELEASE, "deployed")]


def test_install_creates_the_upstream_operators_for_real(release: Release) -> None:
    admin = release.admin
    crds = {c["metadata"]["name"] for c in admin.list("apiextensions.k8s.io/v1", "CustomResourceDefinition")}
    assert {"kafkas.kafka.strimzi.io", "kafkanodepools.kafka.strimzi.io", "kafkatopics.kafka.strimzi.io",
            "k8ssandraclusters.k8ssandra.io", "cassandradatacenters.cassandra.datastax.com",
            "sparkapplications.sparkoperator.k8s.io", "mongodbcommunity.mongodbcommunity.mongodb.com",
            "userpipelines.userpipeline.io"} <= crds
    deployments = {d["metadata"]["name"] for d in admin.list("apps/v1", "Deployment", NAMESPACE)}
    assert len(deployments) >= 7, deployments  # Strimzi, K8ssandra + cass-operator, Spark (2), MCK, ours
    assert len(webhook_configurations(admin)) >= 3, webhook_configurations(admin)
    cluster_roles = {r["metadata"]["name"] for r in admin.list("rbac.authorization.k8s.io/v1", "ClusterRole")}
    assert any("strimzi" in name for name in cluster_roles) and any("spark" in name for name in cluster_roles)
    # The controller-manager turns our operator's Deployment into a ReplicaSet and a real Pod.
    wait_for(lambda: pods_of(admin, "app.kubernetes.io/component=operator"), 60, what="the operator's Pod")
    # Helm created nothing an upstream webhook guards: the operator applies those (the ordering solution).
    for kind, api_version in PLATFORM.items():
        assert admin.list(api_version, kind, NAMESPACE) == [], kind


def refused_replica_sets(admin: Kube) -> dict[str, str]:
    return {rs["metadata"]["name"]: c.get("message", "")
            for rs in admin.list("apps/v1", "ReplicaSet", NAMESPACE)
            for c in (rs.get("status") or {}).get("conditions") or [] if c["type"] == "ReplicaFailure"}


def test_upstream_operator_pods_are_admitted_as_restricted(release: Release) -> None:
    """The upstream operators run in the release namespace too: restricted must not lock them out."""
    admin = release.admin
    deployments = admin.list("apps/v1", "Deployment", NAMESPACE)
    for deployment in deployments:
        name = deployment["metadata"]["name"]
        selector = ",".join(f"{k}={v}" for k, v in deployment["spec"]["selector"]["matchLabels"].items())
        assert pods_of(admin, selector), f"no Pod for Deployment {name}: {refused_replica_sets(admin)}"
    assert not refused_replica_sets(admin), refused_replica_sets(admin)


def test_platform_waits_for_the_webhooks_then_arrives(release: Release, operator: OperatorProcess) -> None:
    admin = release.admin
    held = wait_for(lambda: (s := platform_status(admin)) and len(s) == len(PLATFORM) and
                    any(v.startswith("WebhookNotReady") for v in s.values()) and s,
                    120, what="the platform applied where no webhook guards it, held back where one does")
    assert held[f"K8ssandraCluster/{RELEASE}"].startswith("WebhookNotReady: "), held  # K8ssandra's validating webhook
    assert "failed calling webhook" in held[f"K8ssandraCluster/{RELEASE}"]
    assert all(v == "Applied" or v.startswith("WebhookNotReady") for v in held.values()), held
    assert admin.get(PLATFORM["K8ssandraCluster"], "K8ssandraCluster", RELEASE, NAMESPACE) is None
    # The Spark Operator's webhook holds the pipeline's SparkApplication back too, and status says so.
    stream = wait_for(lambda: (c := condition(pipeline(admin), "StreamJob")) and c.get("status") == "False" and c,
                      120, what="the StreamJob part waiting for the Spark Operator")
    assert "webhook" in stream["message"], stream

    # Play the operators: their webhooks would answer once their Pods serve; here they are removed.
    for kind, name in webhook_configurations(admin):
        admin.delete(ADMISSION, kind, name)
    applied = wait_for(lambda: (s := platform_status(admin)) and all(v == "Applied" for v in s.values()) and s,
                       120, what="every platform resource applied once the webhooks answer")
    owner = admin.get("v1", "ConfigMap", f"{RELEASE}-platform", NAMESPACE)["metadata"]["uid"]
    for key in applied:
        kind, name = key.split("/")
        stored = admin.get(PLATFORM[kind], kind, name, NAMESPACE)
        assert stored["metadata"]["ownerReferences"][0]["uid"] == owner  # helm uninstall removes them (GC)


def test_every_custom_resource_is_accepted_against_the_upstream_schema(release: Release, operator) -> None:
    admin = release.admin
    names = {"KafkaTopic": [f"{PIPELINE}-raw", f"{PIPELINE}-dlq"], "SparkApplication": [f"{PIPELINE}-stream"],
             "UserPipeline": [PIPELINE]}
    for kind, api_version in CUSTOM_RESOURCES.items():
        for name in names.get(kind) or [o["metadata"]["name"] for o in admin.list(api_version, kind, NAMESPACE)]:
            stored = wait_for(lambda: admin.get(api_version, kind, name, NAMESPACE), 120, what=f"{kind} {name}")
            copy = {"apiVersion": api_version, "kind": kind, "spec": stored["spec"],
                    "metadata": {"name": f"{name}-copy", "namespace": NAMESPACE}}
            dry_run_create(admin, copy)  # what was accepted once is accepted again: no defaulting masked it
            # ... and the schema is really enforced: an unknown field and a wrong type are refused.
            assert "unknown field" in refusal(admin, {**copy, "spec": {**stored["spec"], "notAField": 1}}), kind
        assert admin.list(api_version, kind, NAMESPACE), f"no {kind} stored"
    wrong = {"apiVersion": "kafka.strimzi.io/v1", "kind": "KafkaTopic", "metadata": {"name": "bad"},
             "spec": {"partitions": "three"}}
    assert "spec.partitions" in refusal(admin, wrong)


def test_pipeline_ready_when_the_upstream_operators_report_ready(release: Release, operator) -> None:
    admin = release.admin
    # What Strimzi, K8ssandra and the MongoDB operator report and create once their clusters run.
    ready = [{"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"}]
    bootstrap = f"{RELEASE}-kafka-bootstrap.{NAMESPACE}.svc:9092"
    set_status(admin, PLATFORM["Kafka"], "Kafka", RELEASE, {"conditions": ready, "observedGeneration": 1,
                                                            "listeners": [{"name": "plain",
                                                                           "bootstrapServers": bootstrap}]})
    set_status(admin, PLATFORM["K8ssandraCluster"], "K8ssandraCluster", RELEASE,
               {"conditions": [{"type": "CassandraInitialized", "status": "True",
                                "lastTransitionTime": "2026-01-01T00:00:00Z"}]})
    set_status(admin, PLATFORM["MongoDBCommunity"], "MongoDBCommunity", f"{RELEASE}-mongodb",
               {"phase": "Running", "currentStatefulSetReplicas": 1, "currentMongoDBMembers": 1, "version": "8.0.10",
                "mongoUri": f"mongodb://{RELEASE}-mongodb-0.{RELEASE}-mongodb-svc.{NAMESPACE}.svc:27017"})
    admin.apply(secret(f"{RELEASE}-superuser", {"username": "userpipeline-superuser", "password": "not-checked"}))
    admin.apply(secret(f"{RELEASE}-mongodb-admin-userpipeline", {"connectionString.standard": release.mongo_uri,
                                                                  "username": "userpipeline", "password": "x"}))

    def working() -> dict | None:
        for name in (f"{PIPELINE}-raw", f"{PIPELINE}-dlq"):  # Strimzi's Topic Operator
            set_status(admin, CUSTOM_RESOURCES["KafkaTopic"], "KafkaTopic", name, {"conditions": ready})
        set_status(admin, CUSTOM_RESOURCES["SparkApplication"], "SparkApplication", f"{PIPELINE}-stream",
                   {"applicationState": {"state": "RUNNING"}, "driverInfo": {}})
        found = pipeline(admin)
        return found if condition(found, "Ready").get("status") == "True" else None

    try:  # the producer's and the dashboard's Pods are reported Ready by the release's kubelet stand-in
        wait_for(working, 180, what="UserPipeline Ready=True")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{pipeline(admin).get('status')}\n{operator.tail()}") from None

    # Take one part away: the MongoDB operator's connection Secret is gone.
    admin.delete("v1", "Secret", f"{RELEASE}-mongodb-admin-userpipeline", NAMESPACE)
    broken = wait_for(lambda: (c := condition(pipeline(admin), "Ready")) and c.get("status") == "False" and c,
                      120, what="Ready=False once the MongoDB Secret is gone")
    assert "MongoDB" in broken["message"], broken
    part = condition(pipeline(admin), "MongoDB")
    assert part["status"] == "False" and f"{RELEASE}-mongodb-admin-userpipeline" in part["message"], part


def test_every_pod_we_own_is_admitted_as_restricted_and_a_bad_one_is_not(release: Release, operator) -> None:
    admin = release.admin
    assert admin.get("v1", "Namespace", NAMESPACE)["metadata"]["labels"].items() >= RESTRICTED.items()
    components = {p["metadata"]["labels"].get("app.kubernetes.io/component") for p in pods_of(admin, OURS)}
    assert {"operator", "producer", "dashboard"} <= components, components  # real Pods, admitted
    # The purge CronJob's Job (as `kubectl create job --from=cronjob/...`): the Job controller makes its Pod.
    cron = admin.get("batch/v1", "CronJob", f"{PIPELINE}-purge", NAMESPACE)
    admin.create({"apiVersion": "batch/v1", "kind": "Job",
                  "metadata": {"name": f"{PIPELINE}-purge-now", "namespace": NAMESPACE},
                  "spec": cron["spec"]["jobTemplate"]["spec"]})
    wait_for(lambda: pods_of(admin, f"job-name={PIPELINE}-purge-now"), 60, what="the purge Job's Pod")
    # The Spark driver and executors (made by the Spark Operator from the SparkApplication) and `helm test`'s Pod.
    for pod in [*spark_pods(admin), *helm_test_pods(release)]:
        dry_run_create(admin, pod)
    bad = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "root-and-privileged"},
           "spec": {"containers": [{"name": "c", "image": "busybox",
                                    "securityContext": {"privileged": True, "runAsUser": 0}}]}}
    message = refusal(admin, bad)
    assert 'violates PodSecurity "restricted:latest"' in message and "privileged" in message, message


def spark_pods(admin: Kube) -> list[dict]:
    app = admin.get(CUSTOM_RESOURCES["SparkApplication"], "SparkApplication", f"{PIPELINE}-stream", NAMESPACE)["spec"]
    pods = []
    for role in ("driver", "executor"):
        spec = app[role]
        pods.append({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"{PIPELINE}-stream-{role}"},
                     "spec": {"securityContext": spec.get("podSecurityContext", {}),
                              "containers": [{"name": f"spark-kubernetes-{role}", "image": app["image"],
                                              "securityContext": spec.get("securityContext", {})}]}})
    return pods


def helm_test_pods(release: Release) -> list[dict]:
    hooks = helm("get", "hooks", RELEASE, "-n", NAMESPACE, "--kubeconfig", str(release.plane.kubeconfig)).stdout
    pods = [d for d in yaml.safe_load_all(hooks) if d and d["kind"] == "Pod"]
    assert pods, "no helm test pod"
    for pod in pods:
        pod["metadata"].pop("namespace", None)
    return pods
