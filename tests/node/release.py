"""The chart installed on the real node the way a user with their own Kafka, Cassandra and MongoDB installs it:
the upstream operators off, `*.external` values naming the stores, the images built here (`pullPolicy: Never`).

What the cluster lacks and a user's cluster has is supplied first: the SparkApplication CRD (from the vendored
Spark Operator chart; its controller is played by node/spark_standin.py) and a volume for the checkpoint claim
(kind and minikube provision one; here a PersistentVolume on the node's disk).
"""

from __future__ import annotations

import base64
import subprocess
import tempfile
from pathlib import Path

import yaml
from cassandra import InvalidRequest
from kubernetes import client
from kubernetes.client.rest import ApiException

from kube.chart import CHART, helm_binary
from kube.resources import vendored_crds
from node.node import Node
from node.stores import ExternalStores
from pymongo import MongoClient
from producer.kit import end_offsets
from stream.streamkit import cassandra_profiles, consume_all, mongo_aggregates

RELEASE = NAMESPACE = "userpipeline"
PIPELINE = "users"
RESTRICTED = {"pod-security.kubernetes.io/enforce": "restricted", "pod-security.kubernetes.io/enforce-version": "latest"}
MONGO_SECRET = "external-mongodb"
SUBCHARTS = ("strimzi-kafka-operator", "k8ssandra-operator", "spark-operator", "mongodb-kubernetes")


def pipeline_spec(rate: float) -> dict:
    """Every record valid and adult: then every acknowledged id must end up in Cassandra."""
    return {"source": {"type": "synthetic", "minorRatio": 0, "brokenRatio": 0, "seed": 7},
            "producer": {"ratePerSecond": rate},
            "topic": {"partitions": 2},
            "stream": {"triggerInterval": "2s"},
            "retention": {"purgeSchedule": "0 3 * * *"}}


def values(stores: ExternalStores, rate: float) -> dict:
    return {
        "image": {"pullPolicy": "Never"},
        "operator": {"readbackSeconds": 2, "maxBackoffSeconds": 5},
        "kafka": {"external": {"bootstrap": stores.kafka_bootstrap}},
        "cassandra": {"external": {"hosts": stores.cassandra_hosts}, "keyspace": stores.keyspace},
        "mongodb": {"external": {"secretName": MONGO_SECRET, "uriKey": "uri"}, "database": stores.database},
        "pipeline": {"create": True, "name": PIPELINE, "spec": pipeline_spec(rate)},
        **{name: {"enabled": False} for name in SUBCHARTS},
    }


def prepare(node: Node, stores: ExternalStores) -> None:
    """Namespace (restricted), the MongoDB Secret, the SparkApplication CRD and a volume for the checkpoints."""
    api = node.api_client()
    core = client.CoreV1Api(api)
    core.create_namespace({"metadata": {"name": NAMESPACE, "labels": RESTRICTED}})
    core.create_namespaced_secret(NAMESPACE, {
        "metadata": {"name": MONGO_SECRET}, "type": "Opaque",
        "data": {"uri": base64.b64encode(stores.mongo_uri.encode()).decode()}})
    extensions = client.ApiextensionsV1Api(api)
    for crd in vendored_crds("spark-operator", "/crds/sparkoperator.k8s.io_sparkapplications.yaml"):
        try:
            extensions.create_custom_resource_definition(crd)
        except ApiException as exc:
            if exc.status != 409:
                raise
    volume = node.layout.home / "volumes" / "checkpoints"
    volume.mkdir(parents=True)
    volume.chmod(0o777)  # the Spark user (185) writes there; a hostPath volume ignores fsGroup
    core.create_persistent_volume({
        "metadata": {"name": "node-checkpoints"},
        "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"], "storageClassName": "",
                 "persistentVolumeReclaimPolicy": "Retain", "hostPath": {"path": str(volume), "type": "Directory"}}})


def helm(node: Node, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([helm_binary(), f"--kubeconfig={node.kubeconfig}", *args], capture_output=True, text=True,
                          timeout=timeout)


def install(node: Node, stores: ExternalStores, rate: float) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "values.yaml"
        path.write_text(yaml.safe_dump(values(stores, rate)))
        return helm(node, "install", RELEASE, str(CHART), "--namespace", NAMESPACE, "-f", str(path),
                    "--wait", "--timeout", "5m")


class Chart:
    """The installed release and what the tests read from it: pods, the raw topic, the stores."""

    def __init__(self, node: Node, stores: ExternalStores, installed: subprocess.CompletedProcess, spark_operator,
                 cassandra, mongo):
        self.node, self.stores, self.installed, self.spark_operator = node, stores, installed, spark_operator
        self.cassandra, self.mongo = cassandra, mongo
        self.core = client.CoreV1Api(node.api_client())
        self.custom = client.CustomObjectsApi(node.api_client())
        self._last_count = -1

    def pod(self, component: str) -> str | None:
        """The name of the running (not terminating) pod of one of the pipeline's components."""
        pods = self.core.list_namespaced_pod(NAMESPACE, label_selector=f"app.kubernetes.io/component={component},"
                                                                       f"app.kubernetes.io/instance={PIPELINE}").items
        live = [p.metadata.name for p in pods if not p.metadata.deletion_timestamp and p.status.phase == "Running"]
        return live[0] if live else None

    def patch_spec(self, patch: dict) -> None:
        self.custom.patch_namespaced_custom_object("userpipeline.io", "v1alpha1", NAMESPACE, "userpipelines",
                                                   PIPELINE, {"spec": patch})

    def status(self) -> dict:
        return self.custom.get_namespaced_custom_object("userpipeline.io", "v1alpha1", NAMESPACE, "userpipelines",
                                                        PIPELINE).get("status") or {}

    def raw_keys(self) -> set[str]:
        return {m.key().decode() for m in consume_all(self.stores.host_kafka, "users.raw")}

    def raw_total(self) -> int:
        return end_offsets(self.stores.host_kafka, "users.raw")

    def logs(self, component: str) -> str:
        return self.core.read_namespaced_pod_log(self.pod(component), NAMESPACE, container=component)

    def quiet_raw_keys(self) -> set[str] | None:
        """The raw topic's keys once two reads in a row see the same number of records."""
        keys = self.raw_keys()
        quiet, self._last_count = len(keys) == self._last_count, len(keys)
        return keys if quiet else None

    def profiles(self) -> dict:
        session = self.cassandra.session()
        try:
            return cassandra_profiles(session, self.stores.keyspace)
        except InvalidRequest:  # the stream has not made the table yet
            return {}
        finally:
            session.cluster.shutdown()

    def aggregates(self) -> dict[str, tuple[int, int]]:
        with MongoClient(self.mongo.uri, serverSelectionTimeoutMS=5000) as mongo:
            return mongo_aggregates(mongo[self.stores.database])
