#!/usr/bin/env python3
"""Bootstrap step `node`: what a real single-node Kubernetes needs on this machine (issue 9).

- kubelet, kube-scheduler and kube-proxy in one busybox-style binary built from the Go module proxy
  (tools/go/node; etcd, kube-apiserver and kube-controller-manager are the `kube` step's wrapper), cached under
  $USERPIPELINE_CACHE/bin keyed by the Kubernetes version and a digest of the wrapper's main.go and go.mod;
- containerd, runc, the CNI plugins, podman and debootstrap from Debian with apt-get;
- the node's images as `docker save` archives under $USERPIPELINE_CACHE/images: the pod sandbox ("pause",
  a static C program), a Debian bookworm + python3 base (debootstrap), CoreDNS and Traefik (their Go modules).

Records `node` (the binary), `node_images` and `node_tools` (the Debian binaries) in the manifest. Wired into
tools/bootstrap.py as a step; also runnable alone: `tools/bootstrap_node.py` (merges into the manifest).
Standard library only, like tools/bootstrap.py, whose helpers it uses.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bootstrap as bs  # noqa: E402 - tools/bootstrap.py, found through the line above

MODULE = "tools/go/node"
# Debian package -> the executable it provides (what is looked for on PATH).
PACKAGES = {"containerd": "containerd", "runc": "runc", "containernetworking-plugins": "/usr/lib/cni/bridge",
            "podman": "podman", "debootstrap": "debootstrap"}
TOOLS = ("containerd", "containerd-shim-runc-v2", "ctr", "runc", "podman", "debootstrap")
CNI_DIR = Path("/usr/lib/cni")


def _present(exe: str) -> bool:
    return Path(exe).exists() if exe.startswith("/") else shutil.which(exe) is not None


def install_packages(step: str = "node") -> None:
    missing = [pkg for pkg, exe in PACKAGES.items() if not _present(exe)]
    if not missing:
        bs.say(step, "containerd, runc, CNI plugins, podman and debootstrap present")
        return
    if os.geteuid() != 0:
        raise bs.BootstrapError(f"missing {' '.join(missing)}: run `sudo apt-get install -y {' '.join(missing)}`")
    bs.say(step, f"installing {' '.join(missing)} with apt-get")
    bs.wait_for_package_lock(step)
    bs.run(bs.apt_get("update", "-q"), step)
    bs.wait_for_package_lock(step)
    bs.run(bs.apt_get("install", "-y", "-q", "--no-install-recommends", *missing), step,
           env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})


def node_binary() -> Path:
    version = bs.VERSIONS["kube"]["version"]
    module = bs.ROOT / MODULE
    return bs.CACHE / "bin" / f"node-{version}-{bs.digest(module / 'main.go', module / 'go.mod')}"


def version_ldflags(version: str) -> str:
    # Without these the binaries report v0.0.0-master and the kubelet's version skew checks misfire.
    major, minor, _ = version.split(".")
    pkg = "k8s.io/component-base/version"
    return (f"-X {pkg}.gitVersion=v{version} -X {pkg}.gitMajor={major} -X {pkg}.gitMinor={minor} "
            f"-X {pkg}.gitTreeState=clean")


# The pod sandbox ("pause") process: sleeps until told to stop, reaps orphans (it is PID 1 of the pod).
PAUSE_C = r"""
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>
static void stop(int sig) { (void)sig; _exit(0); }
static void reap(int sig) { (void)sig; while (waitpid(-1, NULL, WNOHANG) > 0) {} }
int main(void) {
  signal(SIGINT, stop); signal(SIGTERM, stop); signal(SIGCHLD, reap);
  for (;;) pause();
}
"""
PAUSE_REF = "localhost/userpipeline/pause:static-1"
BASE_REF = "localhost/userpipeline/debian-python:bookworm"
# python3-venv: the project's Dockerfiles make their virtualenvs with `python3 -m venv` (ensurepip).
BASE_PACKAGES = ("python3", "python3-venv")
DEBIAN_MIRROR = "http://deb.debian.org/debian"
IMAGE_ENV = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8"]


def _add_bytes(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode = len(data), 0o644
    archive.addfile(info, io.BytesIO(data))


def write_image_archive(layer: Path, ref: str, dest: Path, entrypoint: list[str] | None = None) -> None:
    """A one-layer image as a `docker save` archive, which `ctr images import` reads (no registry, no daemon)."""
    sha = hashlib.sha256()
    with layer.open("rb") as f:
        while chunk := f.read(1 << 20):
            sha.update(chunk)
    diff_id = sha.hexdigest()
    config = {"architecture": "amd64", "os": "linux", "created": "2026-01-01T00:00:00Z",
              "config": {"Env": IMAGE_ENV, **({"Entrypoint": entrypoint} if entrypoint else {})},
              "rootfs": {"type": "layers", "diff_ids": [f"sha256:{diff_id}"]},
              # One history entry per layer: podman refuses to build FROM an image whose history lists fewer.
              "history": [{"created": "2026-01-01T00:00:00Z", "created_by": f"userpipeline bootstrap: {ref}"}]}
    config_bytes = json.dumps(config, sort_keys=True).encode()
    config_name = f"{hashlib.sha256(config_bytes).hexdigest()}.json"
    manifest = [{"Config": config_name, "RepoTags": [ref], "Layers": [f"{diff_id}/layer.tar"]}]
    tmp = dest.with_name(dest.name + ".partial")
    with tarfile.open(tmp, "w") as archive:
        _add_bytes(archive, config_name, config_bytes)
        archive.add(layer, f"{diff_id}/layer.tar")
        _add_bytes(archive, "manifest.json", json.dumps(manifest).encode())
    tmp.replace(dest)


def build_pause(images: Path) -> Path:
    dest = images / f"pause-{hashlib.sha256(PAUSE_C.encode()).hexdigest()[:12]}.tar"
    if dest.exists():
        bs.say("node", f"cached {dest}")
        return dest
    bs.require("gcc", "install gcc and libc6-dev (apt-get install gcc libc6-dev)")
    with tempfile.TemporaryDirectory() as tmp:
        src, exe, layer = Path(tmp) / "pause.c", Path(tmp) / "pause", Path(tmp) / "layer.tar"
        src.write_text(PAUSE_C)
        bs.run(["gcc", "-static", "-Os", "-s", "-o", str(exe), str(src)], "node")
        with tarfile.open(layer, "w") as archive:
            archive.add(exe, "pause")
        write_image_archive(layer, PAUSE_REF, dest, ["/pause"])
    return dest


def unmount_under(root: Path) -> None:
    targets = [line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines()]
    for target in sorted((t for t in targets if t.startswith(f"{root}/")), key=len, reverse=True):
        subprocess.run(["umount", "-l", target], check=False)


def build_base(images: Path) -> Path:
    """Debian bookworm (minbase) plus Debian's Python: the base the node's test images start from."""
    key = hashlib.sha256(f"bookworm minbase {BASE_PACKAGES} {IMAGE_ENV} history".encode()).hexdigest()[:12]
    dest = images / f"debian-python-bookworm-{key}.tar"
    if dest.exists():
        bs.say("node", f"cached {dest}")
        return dest
    bs.say("node", f"building the Debian bookworm + python3 base image with debootstrap into {dest}")
    with tempfile.TemporaryDirectory(dir=images) as tmp:
        rootfs, layer = Path(tmp) / "rootfs", Path(tmp) / "layer.tar"
        try:
            bs.run(["debootstrap", "--variant=minbase", f"--include={','.join(BASE_PACKAGES)}", "bookworm",
                    str(rootfs), DEBIAN_MIRROR], "node")
        finally:
            unmount_under(rootfs)  # a failed debootstrap can leave proc/sys mounted: never delete through them
        for cache in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for entry in (rootfs / cache).glob("*.deb" if "archives" in cache else "*_*"):
                entry.unlink()
        bs.run(["tar", "-C", str(rootfs), "--numeric-owner", "-cf", str(layer), "."], "node")
        write_image_archive(layer, BASE_REF, dest)
    return dest


COREDNS_MODULE = "tools/go/node/coredns"  # CoreDNS with only the plugins the node's Corefile uses
COREDNS_VERSION = "1.15.0"
COREDNS_REF = f"localhost/userpipeline/coredns:{COREDNS_VERSION}"


def build_coredns(images: Path) -> Path:
    """CoreDNS from its Go module, as a one-binary image: the node's cluster DNS, as on kind."""
    module = bs.ROOT / COREDNS_MODULE
    dest = images / f"coredns-{COREDNS_VERSION}-{bs.digest(module / 'main.go', module / 'go.mod')}.tar"
    if dest.exists():
        bs.say("node", f"cached {dest}")
        return dest
    with tempfile.TemporaryDirectory(dir=images) as tmp:
        binary, layer = Path(tmp) / "coredns", Path(tmp) / "layer.tar"
        bs.go_build("node", COREDNS_MODULE, binary)
        with tarfile.open(layer, "w") as archive:
            archive.add(binary, "coredns")
        write_image_archive(layer, COREDNS_REF, dest, ["/coredns"])
    return dest


def traefik_ref() -> str:
    return f"localhost/userpipeline/traefik:v{bs.VERSIONS['traefik']['version']}"


def build_traefik(images: Path) -> tuple[Path, Path]:
    """Traefik from its Go module (tools/go/traefik builds its `tool`) and a one-binary image of it: the node's
    ingress controller (tests/node/ingress.py). The binary stays in the cache too: tests/ingress runs it on the
    host against a control plane without a node. Both keyed by the version and the wrapper's go.mod and go.sum."""
    spec = bs.VERSIONS["traefik"]
    module = bs.ROOT / spec["module"]
    key = f"traefik-{spec['version']}-{bs.digest(module / 'go.mod', module / 'go.sum')}"
    binary, dest = bs.CACHE / "bin" / key, images / f"{key}.tar"
    ldflags = f"-X github.com/traefik/traefik/v3/pkg/version.Version=v{spec['version']}"
    bs.go_build("node", spec["module"], binary, ldflags, spec["package"])
    if dest.exists():
        bs.say("node", f"cached {dest}")
        return binary, dest
    with tempfile.TemporaryDirectory(dir=images) as tmp:
        layer = Path(tmp) / "layer.tar"
        with tarfile.open(layer, "w") as archive:
            archive.add(binary, "traefik")
        write_image_archive(layer, traefik_ref(), dest, ["/traefik"])
    return binary, dest


def step_node(manifest: dict) -> None:
    install_packages()
    images = bs.CACHE / "images"
    images.mkdir(parents=True, exist_ok=True)
    # debootstrap mostly waits on the mirror and dpkg while the Go builds use the CPU: run them side by side.
    with ThreadPoolExecutor(1, thread_name_prefix="debootstrap") as pool:
        base = pool.submit(build_base, images)
        binary = node_binary()
        bs.go_build("node", MODULE, binary, version_ldflags(bs.VERSIONS["kube"]["version"]))
        coredns = build_coredns(images)
        traefik_binary, traefik = build_traefik(images)
        pause = build_pause(images)
        base_archive = base.result()
    manifest["node"] = str(binary)
    manifest["node_images"] = {"pause": {"ref": PAUSE_REF, "archive": str(pause)},
                               "base": {"ref": BASE_REF, "archive": str(base_archive)},
                               "coredns": {"ref": COREDNS_REF, "archive": str(coredns)},
                               "traefik": {"ref": traefik_ref(), "archive": str(traefik),
                                           "binary": str(traefik_binary)}}
    manifest["node_tools"] = {name: shutil.which(name) for name in TOOLS}
    manifest["cni_bin_dir"] = str(CNI_DIR)


def main() -> None:
    """Runnable alone: the bootstrap's own run of this one step (hints, errors, manifest)."""
    bs.main(["--only", "node"])


if __name__ == "__main__":
    main()
