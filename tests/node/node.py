"""A real single-node Kubernetes for tests: etcd, kube-apiserver, kube-controller-manager, kube-scheduler,
containerd (runc), the kubelet and kube-proxy, every one inside a network namespace of its own.

The namespace is held by a sleeping process (`unshare --net sleep infinity`); inside it a veth pair gives the
node its address and an on-link default route, so no host interface, route or iptables rule changes. The tests
(in the host's namespace) reach the API server through a forwarder on 127.0.0.1 (node/forward.py).
`stop()` always undoes everything, also after a failed `start()`: see docs/real-node.md.
"""

from __future__ import annotations

import fcntl
from concurrent.futures import Future, ThreadPoolExecutor
import json
import os
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import structlog
from kubernetes import client, config

from node import configs, dns, host, processes
from node.pki import NodePki
from node.processes import Proc

log = structlog.get_logger("node")
LOCK = Path("/run/userpipeline-node.lock")  # one node per machine: fixed paths, cgroup and namespace names
# What a running node started and must undo; a run killed before its teardown leaves it for the next to undo.
STATE = Path("/run/userpipeline-node.json")
# Images live there packed and unpacked: the Spark image alone takes ~2.4 GB (a size limit: memory is used as filled).
CONTAINERD_TMPFS = os.environ.get("USERPIPELINE_NODE_TMPFS", "8g")
WORKLOADS = ("deployments", "replicasets", "statefulsets", "daemonsets", "jobs", "cronjobs")
CONTROL_PLANE = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler")


class NodeError(RuntimeError):
    pass


class NodeUnavailable(NodeError):
    """What the node needs is not installed: the bootstrap's `node` step has not run on this machine."""


def artifacts() -> dict:
    if os.geteuid() != 0:
        raise NodeUnavailable("the real node needs root (cgroups, network namespaces, mounts)")
    cache = Path(os.environ.get("USERPIPELINE_CACHE", Path.home() / ".cache" / "userpipeline"))
    manifest = json.loads((cache / "manifest.json").read_text()) if (cache / "manifest.json").exists() else {}
    needed = {"kube": manifest.get("kube"), "node": manifest.get("node")}
    images = manifest.get("node_images") or {}
    paths = [*needed.values(), *(i.get("archive") for i in images.values())]
    tools = [shutil.which(t) for t in ("containerd", "ctr", "runc", "nsenter", "unshare", "ip")]
    if not images or not all(p and Path(p).exists() for p in paths) or not all(tools):
        raise NodeUnavailable(f"the real node's binaries, images or tools are missing from {cache}/manifest.json: "
                              "run `tools/bootstrap.py` (its `node` step) or `tools/bootstrap_node.py`")
    # The project's own images (bootstrap step `images`): imported by the tests that run them, not at start.
    return {**needed, "images": images, "project_images": manifest.get("images") or {},
            "cni_bin_dir": manifest.get("cni_bin_dir", "/usr/lib/cni")}


class Node:
    def __init__(self, home: Path | None = None):
        self.art = artifacts()
        self.layout = configs.Layout(Path(home or tempfile.mkdtemp(prefix="upl-node-")))
        self.procs: list[Proc] = []
        self.holder: subprocess.Popen | None = None
        self.host: host.HostState | None = None
        self.api_port = 0
        self.kubeconfig = self.layout.home / "admin-host.kubeconfig"
        self._lock_fd: int | None = None
        self.timings: dict[str, float] = {}
        self.stopped = False

    # -- start ------------------------------------------------------------------------------------
    def start(self, timeout: float = 120) -> Node:
        started = time.monotonic()
        self._take_lock()
        recover_stale()
        self.host = host.HostState()
        self._record()
        try:
            self._start(timeout)
        except BaseException:
            self.stop()
            raise
        self.timings["start"] = time.monotonic() - started
        log.info("node_ready", home=str(self.layout.home), **{k: round(v, 1) for k, v in self.timings.items()})
        return self

    def _start(self, timeout: float) -> None:
        lay, t0 = self.layout, time.monotonic()
        (lay.home / "logs").mkdir(parents=True, exist_ok=True)
        self.pki = NodePki(lay.home / "pki", lay.name, lay.node_ip, lay.service_ip)
        self._start_namespace()
        host.create_cgroups(lay.cgroup)
        self._mount_containerd_tmpfs()
        # Unpacking the images takes seconds: it runs while the control plane starts.
        imports = self._start_containerd(timeout)
        self._spawn("etcd", [self.art["kube"], "etcd", *self._etcd_args()])
        self._spawn("kube-apiserver", [self.art["kube"], "kube-apiserver", *self._apiserver_args()])
        self._start_forwarder()
        self._wait(self._apiserver_ready, "kube-apiserver /readyz", timeout)
        self.timings["apiserver_ready"] = time.monotonic() - t0
        self._spawn("kube-controller-manager", [self.art["kube"], "kube-controller-manager", *self._kcm_args()])
        self._spawn("kube-scheduler", [self.art["node"], "kube-scheduler", *self._scheduler_args()])
        imports.result(timeout)
        self.timings["images_imported"] = time.monotonic() - t0
        configs.cni_conflist(lay)
        kubelet_kubeconfig = configs.kubeconfig(lay, self.pki, "kubelet")
        self._spawn("kubelet", [self.art["node"], "kubelet", f"--config={configs.kubelet_config(lay, self.pki)}",
                                f"--kubeconfig={kubelet_kubeconfig}", f"--root-dir={lay.kubelet_dir}",
                                f"--hostname-override={lay.name}", f"--node-ip={lay.node_ip}", "--v=1"])
        proxy_config = configs.kube_proxy_config(lay, configs.kubeconfig(lay, self.pki, "kube-proxy"))
        self._spawn("kube-proxy", [self.art["node"], "kube-proxy", f"--config={proxy_config}", "--v=1"])
        self._wait(self._node_ready, "node Ready", timeout)
        self.timings["node_ready"] = time.monotonic() - t0
        # The kubelet rewrote the host's panic sysctls when it started: put them back now, not only at the end.
        self.host.restore_sysctls()
        if "coredns" in self.art["images"]:
            self._start_dns(timeout)
            self.timings["dns_ready"] = time.monotonic() - t0

    def _start_dns(self, timeout: float) -> None:
        applied = self.kubectl("apply", "-f", "-", input=dns.manifests(self.art["images"]["coredns"]["ref"],
                                                                      self.layout.dns_ip))
        if applied.returncode != 0:
            raise NodeError(f"applying CoreDNS failed: {applied.stderr[-2000:]}")
        apps = client.AppsV1Api(self.api_client())
        self._wait(lambda: apps.read_namespaced_deployment("coredns", "kube-system").status.ready_replicas == 1,
                   "CoreDNS Ready", timeout)

    def _start_namespace(self) -> None:
        self.holder = subprocess.Popen(["unshare", "--net", "sleep", "infinity"], start_new_session=True,
                                       stdin=subprocess.DEVNULL)
        self._record()
        mine = os.readlink("/proc/self/ns/net")
        self._wait(lambda: _readlink(f"/proc/{self.holder.pid}/ns/net") not in (None, mine), "network namespace", 10)
        lay = self.layout
        script = "; ".join([
            "set -e", "ip link set lo up", "ip link add eth0 type veth peer name gw0",
            f"ip addr add {lay.node_ip}/24 dev eth0", "ip link set eth0 up", "ip link set gw0 up",
            f"ip route add default via {lay.gateway_ip} dev eth0 onlink",
            # Per network namespace on this kernel: set inside, the host's stay as they are.
            "sysctl -qw net.ipv4.ip_forward=1", "sysctl -qw net.bridge.bridge-nf-call-iptables=1",
        ])
        subprocess.run(["nsenter", f"--net={self.netns}", "--", "sh", "-c", script], check=True,
                       capture_output=True, text=True, timeout=30)

    @property
    def netns(self) -> Path:
        assert self.holder is not None
        return Path(f"/proc/{self.holder.pid}/ns/net")

    def _start_forwarder(self) -> None:
        self.api_port = self.forward("host", "127.0.0.1", 0, self.netns, self.layout.node_ip, self.layout.api_port)
        host_kubeconfig = configs.kubeconfig(self.layout, self.pki, "admin", f"https://127.0.0.1:{self.api_port}")
        host_kubeconfig.rename(self.kubeconfig)
        configs.kubeconfig(self.layout, self.pki, "admin")  # the in-namespace one, for kubectl via nsenter

    def expose_host_port(self, port: int) -> tuple[str, int]:
        """Make the host's 127.0.0.1:port reachable from the node and its pods at the node's address."""
        return self.layout.node_ip, self.forward(self.netns, self.layout.node_ip, port, "host", "127.0.0.1", port)

    def forward(self, listen_ns, listen_host: str, listen_port: int, connect_ns, connect_host: str,
                connect_port: int) -> int:
        """A forwarder process (node/forward.py, stopped with the node); returns the port it listens on."""
        script = Path(__file__).with_name("forward.py")
        name = f"forward-{len([p for p in self.procs if p.name.startswith('forward')])}"
        args = [sys.executable, str(script), str(listen_ns), listen_host, str(listen_port), str(connect_ns),
                connect_host, str(connect_port)]
        proc = processes.spawn(name, args, None, self.layout.home / "logs")
        self.procs.append(proc)
        self._record()
        self._wait(lambda: proc.log.read_text().strip().isdigit(), f"{name} listening", 10)
        return int(proc.log.read_text().strip())

    def _mount_containerd_tmpfs(self) -> None:
        """containerd's root and state in memory: unpacking the images at each start and deleting them at the end
        take seconds on the shared disk, and an unmount on a tmpfs."""
        lay = self.layout
        lay.containerd_dir.mkdir(parents=True, exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={CONTAINERD_TMPFS},mode=0700", "upl-node-containerd",
                        str(lay.containerd_dir)], check=True, capture_output=True, text=True, timeout=30)

    def _start_containerd(self, timeout: float) -> Future:
        """Start containerd; returns the (running) import of the images into it."""
        lay = self.layout
        conf = configs.containerd_config(lay, self.art["images"]["pause"]["ref"], self.art["cni_bin_dir"],
                                         shutil.which("runc"))
        self._spawn("containerd", ["containerd", f"--config={conf}", "--log-level=warn"])
        self._wait(lambda: self.ctr("version").returncode == 0, "containerd", timeout)
        archives = [Path(image["archive"]) for image in self.art["images"].values()]
        pool = ThreadPoolExecutor(1, thread_name_prefix="node-images")
        imports = pool.submit(lambda: [self.import_image(archive) for archive in archives])
        pool.shutdown(wait=False)  # the thread still finishes the import; start() waits for it before the kubelet
        return imports

    def import_image(self, archive: Path) -> None:
        result = self.ctr("images", "import", str(archive), timeout=300)
        if result.returncode != 0:
            raise NodeError(f"ctr images import {archive} failed: {result.stderr[-2000:]}")

    def ctr(self, *args: str, timeout: float = 30) -> subprocess.CompletedProcess:
        return subprocess.run(["ctr", "--address", str(self.layout.containerd_socket), "--namespace", "k8s.io",
                               *args], capture_output=True, text=True, timeout=timeout)

    # -- component arguments ----------------------------------------------------------------------
    def _etcd_args(self) -> list[str]:
        return ["--name=node", f"--data-dir={self.layout.home / 'etcd'}", "--listen-client-urls=http://127.0.0.1:2379",
                "--advertise-client-urls=http://127.0.0.1:2379", "--listen-peer-urls=http://127.0.0.1:2380",
                "--initial-advertise-peer-urls=http://127.0.0.1:2380", "--initial-cluster=node=http://127.0.0.1:2380",
                "--listen-metrics-urls=", "--unsafe-no-fsync=true", "--log-level=warn"]

    def _apiserver_args(self) -> list[str]:
        p, lay = self.pki, self.layout
        return [
            "--etcd-servers=http://127.0.0.1:2379", f"--secure-port={lay.api_port}", "--bind-address=0.0.0.0",
            f"--advertise-address={lay.node_ip}", f"--tls-cert-file={p.cert('apiserver')}",
            f"--tls-private-key-file={p.key('apiserver')}", f"--client-ca-file={p.ca}",
            "--authorization-mode=Node,RBAC", "--enable-admission-plugins=NodeRestriction",
            f"--service-cluster-ip-range={lay.service_cidr}", "--allow-privileged=true",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={p.dir / 'sa.pub'}", f"--service-account-signing-key-file={p.dir / 'sa.key'}",
            f"--kubelet-client-certificate={p.cert('apiserver-kubelet-client')}",
            f"--kubelet-client-key={p.key('apiserver-kubelet-client')}", f"--kubelet-certificate-authority={p.ca}",
            "--kubelet-preferred-address-types=InternalIP", f"--cert-dir={lay.home / 'apiserver-certs'}",
            "--profiling=false", "--v=1",
        ]

    def _delegated(self, client_name: str) -> list[str]:
        kc = configs.kubeconfig(self.layout, self.pki, client_name)
        return [f"--kubeconfig={kc}", f"--authentication-kubeconfig={kc}", f"--authorization-kubeconfig={kc}",
                "--leader-elect=false", "--bind-address=127.0.0.1", "--profiling=false", "--v=1"]

    def _kcm_args(self) -> list[str]:
        return [*self._delegated("controller-manager"), "--use-service-account-credentials=true",
                f"--service-account-private-key-file={self.pki.dir / 'sa.key'}", f"--root-ca-file={self.pki.ca}",
                f"--cert-dir={self.layout.home / 'kcm-certs'}", f"--cluster-cidr={self.layout.pod_cidr}",
                f"--service-cluster-ip-range={self.layout.service_cidr}"]

    def _scheduler_args(self) -> list[str]:
        return [*self._delegated("scheduler"), f"--cert-dir={self.layout.home / 'scheduler-certs'}"]

    # -- readiness --------------------------------------------------------------------------------
    def _spawn(self, name: str, argv: list[str]) -> None:
        self.procs.append(processes.spawn(name, [str(a) for a in argv], self.netns, self.layout.home / "logs"))
        self._record()

    def _record(self) -> None:
        pids = [[pid, processes.start_time(pid)] for pid in self.pids()]
        state = {"home": str(self.layout.home), "cgroup": self.layout.cgroup, "pids": pids,
                 "socket": str(self.layout.containerd_socket), "host": self.host.as_dict() if self.host else None}
        tmp = STATE.with_suffix(".partial")
        tmp.write_text(json.dumps(state))
        tmp.replace(STATE)

    def _wait(self, ready, what: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for proc in self.procs:
                if proc.popen.poll() is not None:
                    raise NodeError(f"{proc.name} exited with {proc.popen.returncode} while waiting for {what}:\n"
                                    f"{processes.tail(proc.log)}")
            try:
                if ready():
                    return
            except Exception:  # noqa: BLE001 - not ready yet (connection refused, 503...)
                pass
            time.sleep(0.25)
        logs = "\n".join(f"--- {p.name}\n{processes.tail(p.log, 8)}" for p in self.procs)
        raise NodeError(f"{what} not ready after {timeout:.0f}s; the components' last lines:\n{logs}")

    def _apiserver_ready(self) -> bool:
        context = ssl.create_default_context(cafile=str(self.pki.ca))
        context.load_cert_chain(str(self.pki.cert("admin")), str(self.pki.key("admin")))
        with urllib.request.urlopen(f"https://127.0.0.1:{self.api_port}/readyz", timeout=2, context=context) as r:
            return r.status == 200

    def _node_ready(self) -> bool:
        node = client.CoreV1Api(self.api_client()).read_node(self.layout.name)
        return any(c.type == "Ready" and c.status == "True" for c in node.status.conditions or [])

    # -- clients ----------------------------------------------------------------------------------
    def api_client(self) -> client.ApiClient:
        return config.new_client_from_config(config_file=str(self.kubeconfig))

    def kubectl(self, *args: str, timeout: float = 60, input: str | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(["kubectl", f"--kubeconfig={self.kubeconfig}", *args], capture_output=True, text=True,
                              timeout=timeout, input=input)

    # -- stop -------------------------------------------------------------------------------------
    def stop(self) -> None:
        """Undo everything start() did, in reverse; each part runs even if an earlier one failed. Runs once."""
        if self.stopped:
            return
        self.stopped = True
        started = time.monotonic()
        steps = [self._delete_pods, self._stop_node_agents, self._kill_pods, self._stop_containerd,
                 self._stop_control_plane, self._unmount, self._remove_cgroups, self._stop_namespace,
                 self._restore_host, self._remove_home, self._forget_state, self._release_lock]
        failures = []
        for step in steps:
            step_started = time.monotonic()
            try:
                step()
                self.timings[f"stop{step.__name__}"] = time.monotonic() - step_started
            except Exception as exc:  # noqa: BLE001 - keep tearing down; report at the end
                failures.append(f"{step.__name__}: {exc}")
                log.warning("teardown_step_failed", step=step.__name__, error=str(exc)[:300])
        self.timings["stop"] = time.monotonic() - started
        log.info("node_stopped", failures=failures,
                 **{k: round(v, 1) for k, v in self.timings.items() if k.startswith("stop") and v >= 0.1})
        if failures:
            raise NodeError("node teardown was incomplete: " + "; ".join(failures))

    def _by_name(self, *names: str) -> list[Proc]:
        return [p for p in reversed(self.procs) if p.name in names]

    def _delete_pods(self) -> None:
        """Let the kubelet stop the pods itself (volumes unmounted, sandboxes removed) while it still runs."""
        kubelet = self._by_name("kubelet")
        if not kubelet or kubelet[0].popen.poll() is not None or not self.api_port:
            return
        core = client.CoreV1Api(self.api_client())
        # Orphan the pods first, so that no controller recreates them while they go.
        self.kubectl("delete", ",".join(WORKLOADS), "--all", "--all-namespaces", "--cascade=orphan", "--wait=false")
        for pod in core.list_pod_for_all_namespaces().items:
            core.delete_namespaced_pod(pod.metadata.name, pod.metadata.namespace, grace_period_seconds=1)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and (self._running_tasks() or core.list_pod_for_all_namespaces().items):
            time.sleep(0.25)

    def _running_tasks(self) -> int:
        out = self.ctr("tasks", "ls").stdout.splitlines()[1:]
        return sum(1 for line in out if "RUNNING" in line)

    def _stop_node_agents(self) -> None:
        for proc in self._by_name("kube-proxy", "kubelet"):
            processes.stop(proc)

    def _kill_pods(self) -> None:
        left = processes.kill_pids(processes.cgroup_pids(self.layout.cgroup))
        if left:
            raise NodeError(f"pod processes {sorted(left)} survived SIGKILL")

    def _stop_containerd(self) -> None:
        for proc in self._by_name("containerd"):
            processes.stop(proc)
        shims = processes.pids_with_arg(f"-address {self.layout.containerd_socket}")
        left = processes.kill_pids(shims)
        if left:
            raise NodeError(f"containerd shims {sorted(left)} survived SIGKILL")

    def _stop_control_plane(self) -> None:
        for proc in self._by_name(*CONTROL_PLANE, *(p.name for p in self.procs if p.name.startswith("forward"))):
            processes.stop(proc)

    def _unmount(self) -> None:
        host.unmount_under([self.layout.home, Path("/var/lib/kubelet")])
        left = host.mounts_under(self.layout.home)
        if left:
            raise NodeError(f"still mounted: {left}")

    def _remove_cgroups(self) -> None:
        left = host.remove_cgroups(self.layout.cgroup)
        if left:
            raise NodeError(f"cgroups left: {left}")

    def _stop_namespace(self) -> None:
        if self.holder is not None and self.holder.poll() is None:
            self.holder.kill()
            self.holder.wait(10)

    def _restore_host(self) -> None:
        if self.host is not None:
            self.host.restore()

    def _remove_home(self) -> None:
        if os.environ.get("USERPIPELINE_KEEP_NODE_HOME"):  # for debugging: logs stay
            log.info("node_home_kept", home=str(self.layout.home))
            return
        shutil.rmtree(self.layout.home, ignore_errors=True)

    def _forget_state(self) -> None:
        STATE.unlink(missing_ok=True)

    def _take_lock(self) -> None:
        fd = os.open(LOCK, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise NodeError(f"another real node runs on this machine (it holds {LOCK}); one at a time") from None
        self._lock_fd = fd

    def _release_lock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def pids(self) -> set[int]:
        """Every process the node started (for checking that none is left after stop())."""
        return {p.pid for p in self.procs} | ({self.holder.pid} if self.holder else set())


def recover_stale() -> None:
    """Undo what a node killed before its teardown left (its recorded pids, pods, mounts, cgroups, sysctls)."""
    if not STATE.exists():
        return
    state = json.loads(STATE.read_text())
    log.warning("stale_node_found", home=state["home"], pids=state["pids"])
    same = {pid for pid, started in state["pids"] if started and processes.start_time(pid) == started}
    processes.kill_pids(same | processes.cgroup_pids(state["cgroup"]) | processes.pids_with_arg(state["socket"]))
    home = Path(state["home"])
    host.unmount_under([home, Path("/var/lib/kubelet")])
    host.remove_cgroups(state["cgroup"])
    if state["host"]:
        host.HostState(state["host"]).restore()
    shutil.rmtree(home, ignore_errors=True)
    STATE.unlink()


def _readlink(path: str) -> str | None:
    try:
        return os.readlink(path)
    except OSError:
        return None
