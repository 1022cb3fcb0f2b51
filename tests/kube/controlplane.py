"""Start a real etcd and kube-apiserver, optionally a kube-controller-manager (never a kubelet or scheduler),
in a temp dir.

The binary is the bootstrap's busybox-style wrapper (`kube etcd ...`, `kube kube-apiserver ...`,
`kube kube-controller-manager ...`), listed as `kube` in ~/.cache/userpipeline/manifest.json.
Without the controller-manager (the operator tests) nothing collects garbage or finishes deleting
namespaces: tests use a fresh namespace each and check owner references. With it (`controllers=WORKLOADS`)
Deployments, StatefulSets, Jobs and CronJobs create real Pod objects, which no kubelet ever runs.
"""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import time
import urllib.request
from pathlib import Path

import yaml
from kubernetes import client, config

from userpipeline.operator.local.services.ports import free_port

from kube.certs import Pki, make_pki

SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"
# The controllers that turn workloads into Pods, collect garbage (ownerReferences) and delete namespaces;
# nothing that needs nodes, a cloud or token signing.
WORKLOADS = ("deployment-controller", "replicaset-controller", "statefulset-controller", "job-controller",
             "cronjob-controller", "garbage-collector-controller", "namespace-controller")


class ControlPlaneError(RuntimeError):
    pass


def kube_binary() -> Path:
    cache = Path(os.environ.get("USERPIPELINE_CACHE", Path.home() / ".cache" / "userpipeline"))
    manifest = cache / "manifest.json"
    path = json.loads(manifest.read_text()).get("kube") if manifest.exists() else None
    if not path or not Path(path).exists():
        raise ControlPlaneError(f"no kube-apiserver binary in {manifest}: run `tools/bootstrap.py --only kube`")
    return Path(path)


def _tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


class ControlPlane:
    def __init__(self, home: Path, binary: Path | None = None, controllers: tuple[str, ...] = ()):
        self.home = Path(home)
        self.binary = binary or kube_binary()
        self.controllers = controllers
        self.etcd_port, self.peer_port, self.api_port = free_port(), free_port(), free_port()
        self.controller_port = free_port()
        self.server = f"https://127.0.0.1:{self.api_port}"
        self.kubeconfig = self.home / "admin.kubeconfig"
        self.pki: Pki | None = None
        self._procs: list[tuple[subprocess.Popen, Path]] = []

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self, timeout: float = 180) -> ControlPlane:
        self.home.mkdir(parents=True, exist_ok=True)
        self.pki = make_pki(self.home / "pki")
        self._spawn("etcd", self._etcd_args())
        self._wait(lambda: self._get(f"http://127.0.0.1:{self.etcd_port}/health", tls=False), "etcd", timeout)
        self._spawn("kube-apiserver", self._apiserver_args())
        self._wait(lambda: self._get(f"{self.server}/readyz"), "kube-apiserver", timeout)
        self._write_kubeconfig(self.kubeconfig, {"client-certificate": str(self.pki.admin_cert),
                                                 "client-key": str(self.pki.admin_key)})
        if self.controllers:
            self._spawn("kube-controller-manager", self._controller_manager_args())
            self._wait(lambda: self._get(f"https://127.0.0.1:{self.controller_port}/healthz", verify=False),
                       "kube-controller-manager", timeout)
        return self

    def stop(self) -> None:
        for proc, _ in reversed(self._procs):
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        self._procs.clear()

    def _etcd_args(self) -> list[str]:
        peer = f"http://127.0.0.1:{self.peer_port}"
        client_url = f"http://127.0.0.1:{self.etcd_port}"
        return ["etcd", "--name=default", f"--data-dir={self.home / 'etcd'}", f"--listen-client-urls={client_url}",
                f"--advertise-client-urls={client_url}", f"--listen-peer-urls={peer}",
                f"--initial-advertise-peer-urls={peer}", f"--initial-cluster=default={peer}",
                "--unsafe-no-fsync=true", "--log-level=warn"]

    def _apiserver_args(self) -> list[str]:
        pki = self.pki
        assert pki is not None
        return [
            "kube-apiserver", f"--etcd-servers=http://127.0.0.1:{self.etcd_port}",
            f"--secure-port={self.api_port}", "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
            f"--tls-cert-file={pki.serving_cert}", f"--tls-private-key-file={pki.serving_key}",
            f"--client-ca-file={pki.ca_cert}", "--authorization-mode=RBAC",
            "--service-cluster-ip-range=10.0.0.0/24", "--allow-privileged=true",
            "--disable-admission-plugins=ServiceAccount",
            # Makes ownerReferences with blockOwnerDeletion need `update` on the owner's finalizers, as on
            # OpenShift: the chart's RBAC must cover it.
            "--enable-admission-plugins=OwnerReferencesPermissionEnforcement",
            f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
            f"--service-account-key-file={pki.sa_public}", f"--service-account-signing-key-file={pki.sa_private}",
            f"--cert-dir={self.home / 'certs'}", "--profiling=false", "--v=1",
        ]

    def _controller_manager_args(self) -> list[str]:
        return [
            "kube-controller-manager", f"--kubeconfig={self.kubeconfig}", f"--controllers={','.join(self.controllers)}",
            "--leader-elect=false", "--use-service-account-credentials=false",
            f"--secure-port={self.controller_port}", "--bind-address=127.0.0.1", f"--cert-dir={self.home / 'kcm-certs'}",
            f"--authentication-kubeconfig={self.kubeconfig}", f"--authorization-kubeconfig={self.kubeconfig}",
            "--authorization-always-allow-paths=/healthz,/readyz,/livez", "--concurrent-gc-syncs=5",
            "--profiling=false", "--v=1",
        ]

    def _spawn(self, name: str, args: list[str]) -> None:
        log = self.home / f"{name}.log"
        # Invoked through a symlink named `kube` so that builds which dispatch on argv[0] pick argv[1].
        link = self.home / "kube"
        if not link.exists():
            link.symlink_to(self.binary)
        with open(log, "ab") as out:
            proc = subprocess.Popen([str(link), *args], stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, cwd=self.home, start_new_session=True)
        self._procs.append((proc, log))

    def _wait(self, ready, what: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for proc, log in self._procs:
                if proc.poll() is not None:
                    raise ControlPlaneError(f"{log.stem} exited with {proc.returncode}:\n{_tail(log)}")
            if ready():
                return
            time.sleep(0.2)
        raise ControlPlaneError(f"{what} not ready after {timeout:.0f}s:\n{_tail(self._procs[-1][1])}")

    def _get(self, url: str, tls: bool = True, verify: bool = True) -> bool:
        context = None
        if tls and not verify:  # the controller-manager's self-signed serving certificate
            context = ssl._create_unverified_context()  # noqa: S323 - local health probe only
        elif tls:
            assert self.pki is not None
            context = ssl.create_default_context(cafile=str(self.pki.ca_cert))
            context.load_cert_chain(str(self.pki.admin_cert), str(self.pki.admin_key))
        try:
            with urllib.request.urlopen(url, timeout=2, context=context) as response:
                return response.status == 200
        except OSError:
            return False

    # -- clients --------------------------------------------------------------------------------
    def _write_kubeconfig(self, path: Path, user: dict) -> Path:
        assert self.pki is not None
        doc = {
            "apiVersion": "v1", "kind": "Config", "current-context": "test",
            "clusters": [{"name": "test", "cluster": {"server": self.server,
                                                      "certificate-authority": str(self.pki.ca_cert)}}],
            "users": [{"name": "user", "user": user}],
            "contexts": [{"name": "test", "context": {"cluster": "test", "user": "user"}}],
        }
        path.write_text(yaml.safe_dump(doc))
        path.chmod(0o600)
        return path

    def token_kubeconfig(self, path: Path, token: str) -> Path:
        """A kubeconfig that authenticates with a bearer token (e.g. a ServiceAccount's)."""
        return self._write_kubeconfig(path, {"token": token})

    def api_client(self, kubeconfig: Path | None = None) -> client.ApiClient:
        return config.new_client_from_config(config_file=str(kubeconfig or self.kubeconfig))

    def service_account_token(self, namespace: str, name: str, seconds: int = 7200) -> str:
        """A real, signed token of the ServiceAccount (TokenRequest API): the operator then runs as it."""
        core = client.CoreV1Api(self.api_client())
        request = client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(
            audiences=[SERVICE_ACCOUNT_ISSUER], expiration_seconds=seconds))
        return core.create_namespaced_service_account_token(name, namespace, request).status.token
