"""Fixtures for the operator tests: a real control plane, the operator running as the chart's
ServiceAccount (a real token, not admin), and per-test namespaces wired to the real Cassandra and FerretDB."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from kube.chart import render_operator
from kube.controlplane import ControlPlane
from kube.operator_process import OperatorProcess
from kube.pipelines import Stores, create_profiles_table, store_secrets
from kube.resources import install_crds, new_namespace, vendored_crds
from userpipeline.operator.kube.client import Kube
from userpipeline.operator.kube.wiring import StoreWiring

OPERATOR_NAMESPACE = "userpipeline-system"
RELEASE = "up"
# Short retry delays so outage recovery shows within seconds; a fast read-back of the children's health.
OPERATOR_ENV = {"USERPIPELINE_OPERATOR_MAX_BACKOFF_SECONDS": "2", "USERPIPELINE_OPERATOR_STORE_TIMEOUT_SECONDS": "3",
                "USERPIPELINE_OPERATOR_READBACK_SECONDS": "1", "USERPIPELINE_OPERATOR_PLATFORM_NAMESPACE": OPERATOR_NAMESPACE}


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    plane = ControlPlane(tmp_path_factory.mktemp("kube"))
    try:
        plane.start()
        install_crds(Kube(plane.api_client()))
        yield plane
    finally:
        plane.stop()


@pytest.fixture(scope="session")
def admin(control_plane: ControlPlane) -> Kube:
    return Kube(control_plane.api_client())


@pytest.fixture(scope="session")
def operator_kubeconfig(control_plane: ControlPlane, admin: Kube) -> Path:
    """Install the chart's ServiceAccount and RBAC, and return a kubeconfig holding that account's token."""
    admin.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": OPERATOR_NAMESPACE}})
    # The tests' Secrets hold hosts and keyspace too: the wiring's defaults (operator/kube/wiring.py).
    docs = render_operator(RELEASE, OPERATOR_NAMESPACE, {"storesOverride": StoreWiring().model_dump(exclude_none=True)})
    for doc in docs:
        if doc["kind"] != "Deployment":  # no kubelet here: the operator runs as a local process instead
            admin.apply(doc, manager="helm")
    account = next(d for d in docs if d["kind"] == "ServiceAccount")["metadata"]["name"]
    token = control_plane.service_account_token(OPERATOR_NAMESPACE, account)
    return control_plane.token_kubeconfig(control_plane.home / "operator.kubeconfig", token)


@pytest.fixture(scope="session")
def as_operator(control_plane: ControlPlane, operator_kubeconfig: Path) -> Kube:
    return Kube(control_plane.api_client(operator_kubeconfig))


@pytest.fixture(scope="session")
def operator(control_plane: ControlPlane, operator_kubeconfig: Path) -> Iterator[OperatorProcess]:
    process = OperatorProcess(operator_kubeconfig, control_plane.home / "operator.log", OPERATOR_ENV)
    process.start()
    yield process
    process.stop()


@pytest.fixture
def namespace(admin: Kube) -> str:
    return new_namespace(admin)


@pytest.fixture
def stores(admin: Kube, namespace: str, cassandra, mongo) -> Stores:
    """The test namespace with Secrets pointing at the real Cassandra and FerretDB (own keyspace and
    database) and the profiles table the streaming job would have created."""
    suffix = uuid.uuid4().hex[:8]
    result = Stores(namespace, f"ks_{suffix}", f"db_{suffix}")
    create_profiles_table(cassandra, result.keyspace)
    store_secrets(admin, namespace, cassandra.contact, result.keyspace, mongo.uri, result.database)
    return result




@pytest.fixture(scope="session")
def platform_crds(admin: Kube) -> list[str]:
    """Strimzi Kafka/KafkaNodePool, K8ssandraCluster and MongoDBCommunity CRDs, from the vendored charts."""
    docs = [*vendored_crds("strimzi-kafka-operator", "/crds/040-Crd-kafka.yaml"),
            *vendored_crds("strimzi-kafka-operator", "/crds/045-Crd-kafkanodepool.yaml"),
            *vendored_crds("k8ssandra-operator", "k8ssandra-operator-crds.yaml", {"K8ssandraCluster"}),
            *vendored_crds("mongodb-kubernetes", "mongodbcommunity.yaml", {"MongoDBCommunity"})]
    assert len(docs) == 4, [d["spec"]["names"]["kind"] for d in docs]
    return install_crds(admin, docs, timeout=120)
