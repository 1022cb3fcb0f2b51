"""A real single-node Kubernetes (kubelet + containerd + runc) on this machine: a Pod that meets the
`restricted` Pod Security Standard runs and logs, a ClusterIP Service reaches a ready Pod through kube-proxy
(`kubectl exec` from the other), one that breaks the standard is rejected, the project's own image (built
here from images/userpipeline/Dockerfile) serves the dashboard as its non-root user, and the teardown leaves
the host as it found it (sysctls, processes, mounts, fixed folders).

One node for the whole module (one per machine); the last test stops it and checks what is left.
"""

from __future__ import annotations

import http.server
import json
import os
import threading
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest
import structlog
import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException

from harness.polling import wait_for
from harness.services import start_or_fail
from node import host, ingress, processes, release
from node.fixture import real_node  # noqa: F401 - the fixture
from node.node import Node
from node.release import Chart
from node.spark_standin import SparkOperatorStandIn
from node.stores import ExternalStores, NodeKafka
from stream.streamkit import recompute_from_cassandra

log = structlog.get_logger("test-real-node")

NAMESPACE = "restricted-demo"
BASE_IMAGE = "localhost/userpipeline/debian-python:bookworm"
GREETING = "hello from the real node"


def restricted_pod(name: str, **container_overrides) -> dict:
    container = {
        "name": "main", "image": BASE_IMAGE, "imagePullPolicy": "Never",
        "command": ["python3", "-c", f"import os, time; print('{GREETING} as uid', os.getuid(), flush=True); "
                                     "time.sleep(3600)"],
        "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
        **container_overrides,
    }
    return {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
        "spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": 1,
                 "securityContext": {"runAsNonRoot": True, "runAsUser": 65534, "runAsGroup": 65534,
                                     "seccompProfile": {"type": "RuntimeDefault"}},
                 "containers": [container]},
    }


@pytest.fixture(scope="module")
def project_images(real_node: Node) -> Iterator[dict[str, Future]]:
    """The project's images (bootstrap step `images`), imported into containerd in the background while the first
    tests run: unpacking them into the node's tmpfs takes seconds (the Spark image: tens of seconds). Each
    future's result is the image's ref (None: not built)."""
    built = real_node.art["project_images"]
    with ThreadPoolExecutor(1, thread_name_prefix="project-images") as pool:
        yield {name: pool.submit(_import, real_node, built.get(name)) for name in ("userpipeline", "userpipeline-spark")}


@pytest.fixture(scope="module")
def app_image(project_images: dict[str, Future]) -> Future:
    return project_images["userpipeline"]


def _import(node: Node, image: dict | None) -> str | None:
    if not image:
        return None
    node.import_image(Path(image["archive"]))
    return image["ref"]


@pytest.fixture(scope="module")
def core(real_node: Node, project_images: dict[str, Future]) -> client.CoreV1Api:
    api = client.CoreV1Api(real_node.api_client())
    labels = {"pod-security.kubernetes.io/enforce": "restricted", "pod-security.kubernetes.io/enforce-version": "latest"}
    api.create_namespace({"metadata": {"name": NAMESPACE, "labels": labels}})
    # Pods are admitted only once the ServiceAccount controller made the namespace's `default` account.
    wait_for(lambda: api.list_namespaced_service_account(NAMESPACE).items, timeout=60, what="default ServiceAccount")
    return api


def test_node_is_ready(real_node: Node, core: client.CoreV1Api) -> None:
    node = core.read_node(real_node.layout.name)
    ready = {c.type: c.status for c in node.status.conditions}
    assert ready["Ready"] == "True", ready
    assert node.status.node_info.kubelet_version == "v1.36.3"
    assert node.status.node_info.container_runtime_version.startswith("containerd://")


def test_compliant_pod_runs_and_logs(core: client.CoreV1Api) -> None:
    core.create_namespaced_pod(NAMESPACE, restricted_pod("compliant"))

    def running():
        pod = core.read_namespaced_pod("compliant", NAMESPACE)
        assert pod.status.phase not in ("Failed", "Succeeded"), pod.status
        return pod.status.phase == "Running"

    wait_for(running, timeout=90, what="the compliant pod Running")
    wait_for(lambda: GREETING in core.read_namespaced_pod_log("compliant", NAMESPACE), timeout=30,
               what="the pod's log line")
    assert f"{GREETING} as uid 65534" in core.read_namespaced_pod_log("compliant", NAMESPACE)


def test_service_reaches_a_ready_pod_through_kube_proxy(real_node: Node, core: client.CoreV1Api) -> None:
    web = restricted_pod("web", command=["python3", "-m", "http.server", "8080"],
                         readinessProbe={"httpGet": {"path": "/", "port": 8080}, "periodSeconds": 1})
    web["metadata"]["labels"] = {"app": "web"}
    core.create_namespaced_pod(NAMESPACE, web)
    service = core.create_namespaced_service(NAMESPACE, {
        "metadata": {"name": "web"}, "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}})
    wait_for(lambda: _ready(core.read_namespaced_pod("web", NAMESPACE)), timeout=90, what="the web pod Ready")

    fetch = f"import urllib.request; print(urllib.request.urlopen('http://{service.spec.cluster_ip}/', timeout=5).status)"

    def fetched_through_the_service():
        # kubectl exec into the other pod: the ClusterIP answers once kube-proxy has written its rules.
        result = real_node.kubectl("exec", "-n", NAMESPACE, "compliant", "--", "python3", "-c", fetch)
        return result.returncode == 0 and result.stdout.strip() == "200"

    wait_for(fetched_through_the_service, timeout=60, interval=1, what="HTTP 200 through the Service's ClusterIP")


def test_service_names_resolve_through_cluster_dns(real_node: Node, core: client.CoreV1Api) -> None:
    if "coredns" not in real_node.art["images"]:
        pytest.skip("no CoreDNS image in the manifest: rerun tools/bootstrap_node.py")
    cluster_ip = core.read_namespaced_service("web", NAMESPACE).spec.cluster_ip
    lookup = "import socket; print(socket.gethostbyname('web'), socket.gethostbyname('kubernetes.default'))"
    result = real_node.kubectl("exec", "-n", NAMESPACE, "compliant", "--", "python3", "-c", lookup)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [cluster_ip, real_node.layout.service_ip]


def test_pods_reach_a_service_on_the_hosts_loopback(real_node: Node) -> None:
    # How the harness's Kafka, Cassandra and FerretDB (on the host's 127.0.0.1) become reachable from pods.
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hello)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        address, port = real_node.expose_host_port(server.server_address[1])
        fetch = f"import urllib.request; print(urllib.request.urlopen('http://{address}:{port}/', timeout=5).read().decode())"
        result = real_node.kubectl("exec", "-n", NAMESPACE, "compliant", "--", "python3", "-c", fetch)
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == "hello from the host"
    finally:
        server.shutdown()


class _Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - the http.server API
        body = b"hello from the host"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


def _ready(pod) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])


def test_the_project_image_serves_the_dashboard_as_its_own_non_root_user(real_node: Node, core: client.CoreV1Api,
                                                                           app_image: Future) -> None:
    """The application image, built here from images/userpipeline/Dockerfile (bootstrap step `images`), runs its
    default command (the dashboard under gunicorn) under `restricted`: no runAsUser, so the kubelet checks
    runAsNonRoot against the image's own numeric USER; a read-only root filesystem with /tmp an emptyDir."""
    ref = app_image.result(timeout=300)
    if not ref:
        pytest.skip("no userpipeline image in the manifest: run `tools/bootstrap.py --only images`")
    pod = restricted_pod("dashboard", image=ref,
                         env=[{"name": "USERPIPELINE_DASHBOARD_MONGO_TIMEOUT_MS", "value": "200"}],
                         readinessProbe={"httpGet": {"path": "/healthz", "port": 8050}, "periodSeconds": 1,
                                         "timeoutSeconds": 5},
                         volumeMounts=[{"name": "tmp", "mountPath": "/tmp"}])
    container, spec = pod["spec"]["containers"][0], pod["spec"]
    container.pop("command")  # the image's CMD
    container["securityContext"]["readOnlyRootFilesystem"] = True
    spec["securityContext"] = {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
    spec["volumes"] = [{"name": "tmp", "emptyDir": {}}]
    core.create_namespaced_pod(NAMESPACE, pod)

    def ready():
        status = core.read_namespaced_pod("dashboard", NAMESPACE).status
        assert status.phase not in ("Failed", "Succeeded"), status
        return _ready(core.read_namespaced_pod("dashboard", NAMESPACE))

    wait_for(ready, timeout=120, what="the dashboard pod Ready (its /healthz answered the kubelet)")
    probe = ("import json, os, urllib.request; body = json.load(urllib.request.urlopen('http://127.0.0.1:8050/healthz'));"
             " print(os.getuid(), os.getgid(), body['status'])")
    result = real_node.kubectl("exec", "-n", NAMESPACE, "dashboard", "--", "python", "-c", probe)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["10001", "10001", "ok"]


def test_privileged_pod_is_rejected(core: client.CoreV1Api) -> None:
    pod = restricted_pod("privileged", securityContext={"privileged": True})
    with pytest.raises(ApiException) as rejected:
        core.create_namespaced_pod(NAMESPACE, pod)
    assert rejected.value.status == 403
    assert "violates PodSecurity" in rejected.value.body and "restricted" in rejected.value.body


# ---- the chart on the node: operators off, the harness's stores as external stores --------------------------

RATE = 40.0  # records/s: a steady trickle the Spark driver keeps up with on 2 shared cores


@pytest.fixture(scope="module")
def node_stores(real_node: Node, cassandra, mongo, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ExternalStores]:
    kafka = start_or_fail(NodeKafka(tmp_path_factory.mktemp("node-kafka"), real_node.layout.node_ip))
    try:
        real_node.expose_host_port(kafka.ports["node"])
        address, cql = real_node.expose_host_port(cassandra.ports["cql"])
        _, mongo_port = real_node.expose_host_port(mongo.ports["mongo"])
        yield ExternalStores(kafka_bootstrap=kafka.node_bootstrap, cassandra_hosts=f"{address}:{cql}",
                             mongo_uri=f"mongodb://{address}:{mongo_port}/", host_kafka=kafka.bootstrap,
                             keyspace="node_pipeline", database="node_pipeline")
    finally:
        kafka.stop(timeout=30)


@pytest.fixture(scope="module")
def chart(real_node: Node, node_stores: ExternalStores, project_images: dict[str, Future], cassandra,
          mongo) -> Iterator[Chart]:
    refs = {name: future.result(timeout=600) for name, future in project_images.items()}
    if not all(refs.values()):
        pytest.skip("the project's images are not built: run `USERPIPELINE_IMAGES=userpipeline,userpipeline-spark "
                    "tools/bootstrap.py --only images`")
    release.prepare(real_node, node_stores)
    if "traefik" in real_node.art["images"]:  # the cluster's default IngressClass, as on kind or minikube
        applied = real_node.kubectl("apply", "-f", "-", input=ingress.manifests(real_node.art["images"]["traefik"]["ref"]))
        assert applied.returncode == 0, applied.stderr
    with SparkOperatorStandIn(real_node.api_client(), release.NAMESPACE) as spark_operator:
        installed = release.install(real_node, node_stores, RATE)
        yield Chart(real_node, node_stores, installed, spark_operator, cassandra, mongo)


def test_chart_installs_with_external_stores_and_its_pods_run_restricted(chart: Chart) -> None:
    assert chart.installed.returncode == 0, chart.installed.stderr[-3000:]
    core = chart.core
    labels = core.read_namespace(release.NAMESPACE).metadata.labels
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"

    def ours_running() -> list[str] | None:
        pods = core.list_namespaced_pod(release.NAMESPACE).items
        components = {p.metadata.labels.get("app.kubernetes.io/component") for p in pods
                      if p.status.phase == "Running" and _ready(p)}
        wanted = {"operator", "producer", "dashboard"}
        return sorted(components) if wanted <= components else None

    wait_for(ours_running, timeout=240, interval=1, what="the operator, producer and dashboard pods Ready")
    for pod in core.list_namespaced_pod(release.NAMESPACE).items:  # admitted under `restricted`: non-root all
        assert pod.spec.security_context.run_as_non_root, pod.metadata.name


def test_helm_test_reaches_the_external_stores_from_a_pod(chart: Chart) -> None:
    """The chart's own `helm test` pod: Kafka, Cassandra and MongoDB answer with the pipeline's wiring."""
    tested = release.helm(chart.node, "test", release.RELEASE, "--namespace", release.NAMESPACE, "--logs",
                          "--timeout", "3m", timeout=240)
    assert tested.returncode == 0, (tested.stdout + tested.stderr)[-3000:]


def test_the_pipeline_is_ready_when_data_flows(chart: Chart) -> None:
    """`kubectl wait --for=condition=Ready` returns once a batch went through; by then records are in Kafka,
    profiles in Cassandra and aggregates in MongoDB."""
    waited = chart.node.kubectl("wait", f"--for=condition=Ready", f"userpipeline/{release.PIPELINE}",
                                "-n", release.NAMESPACE, "--timeout=300s", timeout=320)
    assert waited.returncode == 0, waited.stderr + _status(chart)
    assert chart.raw_keys(), "no record in the raw topic"
    wait_for(lambda: chart.profiles(), timeout=120, what="profiles in Cassandra")
    wait_for(lambda: chart.aggregates().get("total:all"), timeout=60, what="aggregates in MongoDB")


def test_a_rate_change_reaches_the_running_producer(chart: Chart) -> None:
    pod = chart.pod("producer")
    started = time.monotonic()
    chart.patch_spec({"producer": {"ratePerSecond": RATE + 1}})

    def applied() -> bool:
        logs = chart.core.read_namespaced_pod_log(pod, release.NAMESPACE, container="producer", tail_lines=200)
        return any("producer.spec_applied" in line and f"{RATE + 1:g}" in line for line in logs.splitlines())
    wait_for(applied, timeout=30, interval=0.5, what="producer.spec_applied with the new rate in the producer's log")
    log.info("rate_change_reached_producer", seconds=round(time.monotonic() - started, 1))
    assert chart.pod("producer") == pod, "the producer was restarted instead of changed live"


def test_the_dashboard_serves_through_its_service(chart: Chart) -> None:
    service = chart.core.read_namespaced_service(f"{release.PIPELINE}-dashboard", release.NAMESPACE)
    port = chart.node.forward("host", "127.0.0.1", 0, chart.node.netns, service.spec.cluster_ip, 8050)

    status, body = wait_for(lambda: _get(f"http://127.0.0.1:{port}/healthz"), timeout=60, interval=1,
                            what="the dashboard's /healthz through its Service")
    assert status == 200 and json.loads(body)["status"] == "ok"
    status, page = _get(f"http://127.0.0.1:{port}/") or (0, "")
    assert status == 200 and "<html" in page.lower()


def test_the_dashboard_serves_through_its_ingress(chart: Chart) -> None:
    """Traefik (built from its Go module) is the default IngressClass: the Ingress the operator made for the
    dashboard (any host) routes the page."""
    if "traefik" not in chart.node.art["images"]:
        pytest.skip("no Traefik image in the manifest: rerun `tools/bootstrap.py --only node`")
    name = f"{release.PIPELINE}-dashboard"
    waited = chart.node.kubectl(
        "wait", f"--for=jsonpath={{.status.loadBalancer.ingress[0].hostname}}={ingress.status_hostname()}",
        f"ingress/{name}", "-n", release.NAMESPACE, "--timeout=120s", timeout=140)
    assert waited.returncode == 0, waited.stderr
    traefik = chart.core.read_namespaced_service(ingress.NAME, "kube-system")
    port = chart.node.forward("host", "127.0.0.1", 0, chart.node.netns, traefik.spec.cluster_ip, ingress.WEB_PORT)
    status, body = wait_for(lambda: _get(f"http://127.0.0.1:{port}/healthz"), timeout=60, interval=1,
                            what="the dashboard's /healthz through the Ingress")
    assert status == 200 and json.loads(body)["status"] == "ok"
    status, page = _get(f"http://127.0.0.1:{port}/") or (0, "")
    assert status == 200 and "<html" in page.lower()


def _get(url: str) -> tuple[int, str] | None:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except OSError:  # not routed yet (404 is an HTTPError, an OSError too)
        return None


def test_the_purge_cronjob_runs_to_completion(chart: Chart) -> None:
    created = chart.node.kubectl("create", "job", "purge-now", f"--from=cronjob/{release.PIPELINE}-purge",
                                 "-n", release.NAMESPACE)
    assert created.returncode == 0, created.stderr
    seen: list[str] = []  # the purge's log lines (a failed Job's pods go with it)
    batch = client.BatchV1Api(chart.node.api_client())

    def finished() -> str | None:
        for previous in ("--previous", ""):
            logs = chart.node.kubectl("logs", "job/purge-now", "-n", release.NAMESPACE, *[a for a in [previous] if a])
            seen.extend(line for line in logs.stdout.splitlines() if line not in seen)
        conditions = batch.read_namespaced_job("purge-now", release.NAMESPACE).status.conditions or []
        return next((c.type for c in conditions if c.type in ("Complete", "Failed") and c.status == "True"), None)

    outcome = wait_for(finished, timeout=240, interval=2, what="the purge Job Complete or Failed")
    assert outcome == "Complete", "\n".join(seen[-40:])


def test_deleting_the_producer_and_driver_pods_loses_nothing(chart: Chart) -> None:
    producer, driver = chart.pod("producer"), f"{release.PIPELINE}-stream-driver"
    chart.core.delete_namespaced_pod(producer, release.NAMESPACE, grace_period_seconds=0)
    chart.core.delete_namespaced_pod(driver, release.NAMESPACE, grace_period_seconds=0)
    wait_for(lambda: chart.pod("producer") not in (None, producer), timeout=120, what="a new producer pod")
    before = chart.raw_total()
    wait_for(lambda: chart.raw_total() > before + RATE, timeout=120, interval=1, what="the new producer publishing")
    assert "producer.resumed_from_topic" in chart.logs("producer"), "the new pod sent the same users again"
    chart.patch_spec({"producer": {"paused": True}})
    keys = wait_for(chart.quiet_raw_keys, timeout=60, interval=2, what="the raw topic quiet after the pause")

    def stored_all() -> bool:
        return set(chart.profiles()) >= keys
    wait_for(stored_all, timeout=300, interval=2, what="every acknowledged id in Cassandra")
    profiles = chart.profiles()
    assert set(profiles) == keys
    wait_for(lambda: chart.aggregates() == recompute_from_cassandra(profiles), timeout=60, interval=2,
             what="aggregates equal to a recompute over Cassandra")
    assert chart.spark_operator.submissions[f"{release.PIPELINE}-stream"] >= 2  # the driver was replaced


def test_a_stopped_producer_turns_ready_false(chart: Chart) -> None:
    """The previous test paused the producer: no data flows, so the pipeline is not Ready, and says why."""
    waited = chart.node.kubectl("wait", "--for=condition=Ready=False", f"userpipeline/{release.PIPELINE}",
                                "-n", release.NAMESPACE, "--timeout=60s", timeout=80)
    assert waited.returncode == 0, waited.stderr + _status(chart)
    ready = next(c for c in chart.status()["conditions"] if c["type"] == "Ready")
    assert "StreamJob: ProducerPaused" in ready["message"], ready



def _status(chart: Chart) -> str:
    return "\nstatus: " + yaml.safe_dump(chart.status())[-3000:]


def test_teardown_restores_the_host(real_node: Node) -> None:
    pids = real_node.pids()
    socket = str(real_node.layout.containerd_socket)
    home = real_node.layout.home
    real_node.stop()  # the fixture's own stop() is then a no-op

    assert host.read_sysctls() == real_node.sysctls_before
    assert not [pid for pid in pids if Path(f"/proc/{pid}").exists()]
    assert not processes.cgroup_pids(real_node.layout.cgroup)
    assert not processes.pids_with_arg(socket)
    assert not processes.pids_with_arg(str(home))
    assert not host.mounts_under(home)
    assert not home.exists() or os.environ.get("USERPIPELINE_KEEP_NODE_HOME")
    for created in real_node.host.missing_dirs:
        assert not created.exists(), created
    assert not [h for h in host.hierarchies() if (h / real_node.layout.cgroup).exists()]
