"""The node's configuration files: kubeconfigs, the kubelet's and kube-proxy's configs, containerd's config and
the CNI bridge. Every setting that differs from the defaults is one this machine needed (see docs/real-node.md)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import yaml

from node.pki import NodePki


@dataclass(frozen=True)
class Layout:
    """Names, addresses and folders of one node; every path lives under `home`."""

    home: Path
    name: str = "upl-node"
    node_ip: str = "10.123.0.1"
    gateway_ip: str = "10.123.0.254"  # the veth peer: an on-link default route for the components
    pod_cidr: str = "10.88.0.0/16"
    service_cidr: str = "10.0.0.0/24"
    service_ip: str = "10.0.0.1"  # the `kubernetes` Service
    dns_ip: str = "10.0.0.10"
    api_port: int = 6443
    cgroup: str = "upl-node"  # <hierarchy>/<cgroup> is the kubelet's cgroupRoot

    @property
    def server(self) -> str:
        return f"https://{self.node_ip}:{self.api_port}"

    @property
    def containerd_dir(self) -> Path:
        return self.home / "containerd"

    @property
    def containerd_socket(self) -> Path:
        return self.containerd_dir / "containerd.sock"

    @property
    def kubelet_dir(self) -> Path:
        return self.home / "kubelet"

    @property
    def cni_conf_dir(self) -> Path:
        return self.home / "cni" / "net.d"


def kubeconfig(layout: Layout, pki: NodePki, client: str, server: str | None = None) -> Path:
    doc = {
        "apiVersion": "v1", "kind": "Config", "current-context": "node",
        "clusters": [{"name": "node", "cluster": {"server": server or layout.server,
                                                  "certificate-authority": str(pki.ca)}}],
        "users": [{"name": client, "user": {"client-certificate": str(pki.cert(client)),
                                             "client-key": str(pki.key(client))}}],
        "contexts": [{"name": "node", "context": {"cluster": "node", "user": client}}],
    }
    path = layout.home / f"{client}.kubeconfig"
    path.write_text(yaml.safe_dump(doc))
    path.chmod(0o600)
    return path


def kubelet_config(layout: Layout, pki: NodePki) -> Path:
    doc = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1", "kind": "KubeletConfiguration",
        "failCgroupV1": False,  # 1.35+ refuse cgroup v1 otherwise; this host mounts v1 controllers
        "cgroupDriver": "cgroupfs", "cgroupRoot": f"/{layout.cgroup}", "cgroupsPerQOS": True,
        "failSwapOn": False, "oomScoreAdj": 0, "protectKernelDefaults": False,
        # The shared disk is large but busy: never evict or garbage-collect the locally imported images.
        "evictionHard": {"nodefs.available": "1%", "imagefs.available": "1%", "memory.available": "50Mi"},
        "imageGCHighThresholdPercent": 100, "imageGCLowThresholdPercent": 99,
        "authentication": {"anonymous": {"enabled": False}, "webhook": {"enabled": True},
                           "x509": {"clientCAFile": str(pki.ca)}},
        "authorization": {"mode": "Webhook"},
        "tlsCertFile": str(pki.cert("kubelet-server")), "tlsPrivateKeyFile": str(pki.key("kubelet-server")),
        "address": layout.node_ip, "healthzBindAddress": "127.0.0.1", "healthzPort": 10248,
        "podLogsDir": str(layout.home / "pod-logs"), "resolvConf": str(layout.home / "resolv.conf"),
        "clusterDNS": [layout.dns_ip], "clusterDomain": "cluster.local",
        "containerRuntimeEndpoint": f"unix://{layout.containerd_socket}",
        "serializeImagePulls": False, "maxPods": 50, "registerNode": True,
        "nodeStatusReportFrequency": "10s", "syncFrequency": "10s", "fileCheckFrequency": "10s",
    }
    (layout.home / "resolv.conf").write_text(f"nameserver {layout.dns_ip}\nsearch cluster.local\n")
    path = layout.home / "kubelet.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def kube_proxy_config(layout: Layout, kubeconfig_path: Path) -> Path:
    doc = {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1", "kind": "KubeProxyConfiguration",
        "mode": "iptables", "clusterCIDR": layout.pod_cidr, "hostnameOverride": layout.name,
        "bindAddress": layout.node_ip, "healthzBindAddress": "127.0.0.1:10256", "metricsBindAddress": "127.0.0.1:10249",
        "clientConnection": {"kubeconfig": str(kubeconfig_path)},
        # 0: leave the host's conntrack table sizes alone (they are global, not per namespace).
        "conntrack": {"maxPerCore": 0, "min": 0},
    }
    path = layout.home / "kube-proxy.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def containerd_config(layout: Layout, pause_ref: str, cni_bin_dir: str, runc: str) -> Path:
    d = layout.containerd_dir
    cri = 'plugins."io.containerd.grpc.v1.cri"'
    text = f"""version = 2
root = "{d / 'root'}"
state = "{d / 'state'}"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
                    "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]

[grpc]
  address = "{layout.containerd_socket}"

[ttrpc]
  address = "{d / 'containerd.ttrpc.sock'}"

[debug]
  address = ""

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "{d / 'opt'}"

[{cri}]
  sandbox_image = "{pause_ref}"
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  disable_apparmor = true
  enable_selinux = false

[{cri}.containerd]
  default_runtime_name = "runc"
  snapshotter = "overlayfs"

[{cri}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"

[{cri}.containerd.runtimes.runc.options]
  SystemdCgroup = false
  BinaryName = "{runc}"

[{cri}.cni]
  bin_dir = "{cni_bin_dir}"
  conf_dir = "{layout.cni_conf_dir}"
"""
    d.mkdir(parents=True, exist_ok=True)
    path = d / "config.toml"
    path.write_text(text)
    return path


def cni_conflist(layout: Layout) -> Path:
    doc = {
        "cniVersion": "1.0.0", "name": "upl-node",
        "plugins": [
            {"type": "bridge", "bridge": "cni0", "isGateway": True, "ipMasq": False, "hairpinMode": True,
             "ipam": {"type": "host-local", "dataDir": str(layout.home / "cni" / "ipam"),
                      "ranges": [[{"subnet": layout.pod_cidr}]], "routes": [{"dst": "0.0.0.0/0"}]}},
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }
    layout.cni_conf_dir.mkdir(parents=True, exist_ok=True)
    path = layout.cni_conf_dir / "10-upl-node.conflist"
    path.write_text(json.dumps(doc, indent=2))
    return path
