"""A real single-node Kubernetes (kubelet + containerd + runc) on this machine: a Pod that meets the
`restricted` Pod Security Standard runs and logs, a ClusterIP Service reaches a ready Pod through kube-proxy
(`kubectl exec` from the other), one that breaks the standard is rejected, the project's own image (built
here from images/userpipeline/Dockerfile) serves the dashboard as its non-root user, and the teardown leaves
the host as it found it (sysctls, processes, mounts, fixed folders).

One node for the whole module (one per machine); the last test stops it and checks what is left.
"""

from __future__ import annotations

import http.server
import os
import threading
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from harness.polling import wait_for
from node import host, processes
from node.fixture import real_node  # noqa: F401 - the fixture
from node.node import Node

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
def app_image(real_node: Node) -> Iterator[Future]:
    """The project's image (bootstrap step `images`), imported into containerd in the background while the first
    tests run: unpacking it into the node's tmpfs takes seconds. The future's result is its ref (None: not built)."""
    image = real_node.art["project_images"].get("userpipeline")
    with ThreadPoolExecutor(1, thread_name_prefix="app-image") as pool:
        if not image:
            yield pool.submit(lambda: None)
            return
        yield pool.submit(_import, real_node, image)


def _import(node: Node, image: dict) -> str:
    node.import_image(Path(image["archive"]))
    return image["ref"]


@pytest.fixture(scope="module")
def core(real_node: Node, app_image: Future) -> client.CoreV1Api:
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
