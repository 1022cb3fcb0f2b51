"""The node's ingress controller without the node (issue 9): the Traefik binary the bootstrap built
(tools/go/traefik) runs on the host against a real etcd + kube-apiserver, as the ServiceAccount of
tests/node/ingress.py's manifests (so their ClusterRole is all it has), and routes an Ingress to an HTTP
server of the test through a selector-less Service and a hand-made EndpointSlice. The server listens on the
host's own non-loopback address: the API server refuses loopback addresses in an EndpointSlice.
"""

from __future__ import annotations

import copy
import http.client
import json
import os
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from harness.polling import wait_for
from kube.controlplane import ControlPlane
from node import ingress
from userpipeline.operator.kube.client import ApiException, Kube
from userpipeline.operator.local.services.ports import free_port

NAMESPACE = "kube-system"  # where tests/node deploys it
APP = "ingress-app"
HOST = "users.example.test"
RESTRICTED = {"pod-security.kubernetes.io/enforce": "restricted",
              "pod-security.kubernetes.io/enforce-version": "latest"}


def traefik_binary() -> Path:
    cache = Path(os.environ.get("USERPIPELINE_CACHE", Path.home() / ".cache" / "userpipeline"))
    manifest = cache / "manifest.json"
    entry = ((json.loads(manifest.read_text()) if manifest.exists() else {}).get("node_images") or {}).get("traefik")
    if not entry or not Path(entry.get("binary", "")).exists():
        pytest.skip(f"no traefik in {manifest}'s node_images: run `tools/bootstrap.py --only node`")
    return Path(entry["binary"])


class Backend(BaseHTTPRequestHandler):
    """Answers every GET with the path and Host it saw, so the test knows the request came through Traefik."""

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        body = json.dumps({"path": self.path, "host": self.headers.get("Host"),
                           "forwarded_host": self.headers.get("X-Forwarded-Host")}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def binary() -> Path:
    return traefik_binary()


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    control_plane = ControlPlane(tmp_path_factory.mktemp("kube"))
    try:
        control_plane.start()
        yield control_plane
    finally:
        control_plane.stop()


@pytest.fixture(scope="module")
def admin(plane: ControlPlane) -> Kube:
    kube = Kube(plane.api_client())
    for doc in yaml.safe_load_all(ingress.manifests("localhost/userpipeline/traefik:test", NAMESPACE)):
        kube.apply(doc)
    return kube


def host_address() -> str:
    """An IPv4 address of one of the host's own interfaces, not a loopback or link-local one."""
    listing = subprocess.run(["ip", "-4", "-o", "addr", "show", "scope", "global"], capture_output=True, text=True)
    addresses = [line.split()[3].split("/")[0] for line in listing.stdout.splitlines() if len(line.split()) > 3]
    if not addresses:
        pytest.skip("the host has no global IPv4 address (an EndpointSlice cannot name a loopback one)")
    return addresses[0]


@pytest.fixture(scope="module")
def backend() -> Iterator[tuple[str, int]]:
    server = ThreadingHTTPServer((host_address(), free_port()), Backend)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[0], server.server_address[1]
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def traefik(binary: Path, plane: ControlPlane, admin: Kube) -> Iterator[int]:
    """Traefik with the Deployment's arguments (other ports: the host's 8000 may be taken), as its ServiceAccount."""
    token = plane.service_account_token(NAMESPACE, ingress.NAME)
    kubeconfig = plane.token_kubeconfig(plane.home / "traefik.kubeconfig", token)
    web, ping = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBERNETES_")}  # never the in-cluster client
    log = plane.home / "traefik.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen([str(binary), *ingress.args(web=f"127.0.0.1:{web}", ping=f"127.0.0.1:{ping}",
                                                            status_host=ingress.status_hostname(NAMESPACE))],
                                env={**env, "KUBECONFIG": str(kubeconfig)}, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, cwd=plane.home, start_new_session=True)
    try:
        def pinged() -> bool:
            assert proc.poll() is None, f"traefik exited with {proc.returncode}:\n{log.read_text()[-3000:]}"
            return get(ping, "/ping", "localhost")[0] == 200

        wait_for(pinged, 30, "traefik's /ping")
        yield web
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        print(f"traefik log tail:\n{log.read_text(errors='replace')[-3000:]}")


def get(port: int, path: str, host: str) -> tuple[int, bytes]:
    """A GET with this Host header; (0, b"") when nothing listens yet."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path, headers={"Host": host})
        response = conn.getresponse()
        return response.status, response.read()
    except OSError:
        return 0, b""
    finally:
        conn.close()


def app_objects(backend: tuple[str, int]) -> list[dict]:
    """A Service without a selector, its EndpointSlice (the test's server) and an Ingress without a class."""
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": APP, "namespace": NAMESPACE},
               "spec": {"ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}}
    endpoints = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                 "metadata": {"name": f"{APP}-1", "namespace": NAMESPACE,
                              "labels": {"kubernetes.io/service-name": APP}},
                 "addressType": "IPv4",
                 "endpoints": [{"addresses": [backend[0]], "conditions": {"ready": True}}],
                 "ports": [{"name": "http", "port": backend[1], "protocol": "TCP"}]}
    route = {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": APP, "namespace": NAMESPACE},
             "spec": {"rules": [{"host": HOST, "http": {"paths": [
                 {"path": "/", "pathType": "Prefix",
                  "backend": {"service": {"name": APP, "port": {"name": "http"}}}}]}}]}}
    return [service, endpoints, route]


def test_the_pod_meets_the_restricted_standard(admin: Kube) -> None:
    deployment = next(d for d in yaml.safe_load_all(ingress.manifests("img")) if d["kind"] == "Deployment")
    admin.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "restricted", "labels": RESTRICTED}})
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "traefik", "namespace": "restricted"},
           "spec": {**deployment["spec"]["template"]["spec"], "serviceAccountName": "default"}}
    # A dry run goes through admission (PodSecurity refuses a pod that is not restricted) and stores nothing.
    def dry_run(obj: dict) -> dict:
        return admin.request("POST", admin.path("v1", "Pod", "restricted"), query=[("dryRun", "All")], body=obj)

    assert dry_run(pod)["spec"]["securityContext"]["runAsNonRoot"] is True
    loose = copy.deepcopy(pod)
    del loose["spec"]["containers"][0]["securityContext"]["capabilities"]
    with pytest.raises(ApiException) as refused:  # the namespace does enforce: the same pod keeping its capabilities
        dry_run(loose)
    assert refused.value.status == 403 and "capabilities" in str(refused.value.body)


def test_an_ingress_without_a_class_reaches_its_service_through_traefik(admin: Kube, traefik: int,
                                                                        backend: tuple[str, int]) -> None:
    for obj in app_objects(backend):
        admin.apply(obj)
    stored = admin.get("networking.k8s.io/v1", "Ingress", APP, NAMESPACE)
    assert stored["spec"].get("ingressClassName") == ingress.INGRESS_CLASS  # the default class, set at admission

    # Traefik writes the status (ingresses/status in its ClusterRole) when it has taken the Ingress in.
    def status() -> list:
        found = admin.get("networking.k8s.io/v1", "Ingress", APP, NAMESPACE)
        return ((found.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []

    assert wait_for(status, 30, "the Ingress's status") == [{"hostname": ingress.status_hostname(NAMESPACE)}]

    code, body = wait_for(lambda: (r := get(traefik, "/healthz?x=1", HOST))[0] == 200 and r, 30,
                          "a 200 through traefik")
    seen = json.loads(body)
    assert seen["path"] == "/healthz?x=1"
    assert seen["host"] == HOST  # the Host header is passed on
    assert get(traefik, "/healthz", "other.example.test")[0] == 404
    assert get(traefik, "/ping", "other.example.test")[0] == 404  # /ping answers on its own entrypoint only
