#!/usr/bin/env python3
"""Bootstrap step `images`: the project's images, built here with podman from the same Dockerfiles users build.

The base image is a build argument (images/README.md): here it is the node step's Debian bookworm base
(debootstrap, Debian's Python 3.11 with venv; tools/bootstrap_node.py), loaded into podman. Each image is saved
as a `docker save` archive under $USERPIPELINE_CACHE/images, named by a digest of everything the build reads
(the Dockerfile and its .dockerignore, the package sources, the base archive), so a warm run only checks digests.
Records `images` ({name: {ref, archive}}) in the manifest; the real node's tests import them into containerd.

podman on this machine (no Docker engine, no systemd, cgroup v1 plus a cgroup2 mount = "hybrid"):
- `--runtime runc`: podman's default crun refuses hybrid cgroups ("cgroups in hybrid mode not supported");
- `--cgroup-manager cgroupfs` and `--events-backend file`: there is no systemd or journald;
- `--network host` for RUN steps: the default bridge network would add an interface and iptables rules to
  the host; the host's network reaches PyPI and the Debian mirror directly;
- `--storage-driver overlay` (the kernel's overlayfs on ext4) with its storage under $USERPIPELINE_CACHE/podman,
  so the base image and the build's layers stay cached; `--ignorefile`: podman reads no `<Dockerfile>.dockerignore`;
- the machine's own trust settings (TRUST_FILES: a TLS-intercepting egress with its own CA, trusted by the host's
  CA bundle, /etc/pip.conf and Java's cacerts) are bind-mounted read-only into the RUN steps only (`--volume`),
  never into the images, so pip and Maven inside the build reach PyPI and Maven Central as on the host.

Standard library only, like tools/bootstrap.py. Runnable alone: `tools/bootstrap_images.py` (merges into the
manifest; needs the `node` step's base image and podman).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bootstrap as bs  # noqa: E402 - tools/bootstrap.py, found through the line above
import bootstrap_node as bn  # noqa: E402

STEP = "images"
HINT = ("check that `podman info` works (podman and runc are installed by the `node` step: rerun it with "
        "`tools/bootstrap.py --only node`), that PyPI and the Debian mirror are reachable, and read the build's "
        "output above; then rerun `tools/bootstrap.py --only images`. A broken podman store can be removed: "
        "`rm -rf ~/.cache/userpipeline/podman` (the next run rebuilds from scratch)")
# What the application image's build reads besides its Dockerfile (the Dockerfile's COPY lines).
APP_SOURCES = ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "operator", "jobs", "dashboard")
# Mounted into RUN steps when the host has them (module docstring); each keeps its path.
TRUST_FILES = ("/etc/ssl/certs/ca-certificates.crt", "/etc/pip.conf", "/etc/ssl/certs/java/cacerts")
SKIP = re.compile(r"(^|/)(__pycache__|[^/]*\.egg-info|build|dist)(/|$)|\.py[cod]$")


def podman_base() -> list[str]:
    """podman with this machine's settings (module docstring) and the project's own store."""
    store = bs.CACHE / "podman"
    runc = bs.require("runc", "install it: `tools/bootstrap.py --only node` (apt-get install runc)")
    return ["podman", "--root", str(store / "storage"), "--runroot", str(store / "run"),
            "--storage-driver", "overlay", "--cgroup-manager", "cgroupfs", "--runtime", runc,
            "--events-backend", "file"]


def app_version() -> str:
    """The chart's appVersion: the tag a plain `helm install` of the chart looks for (images/README.md)."""
    text = (bs.ROOT / "charts" / "userpipeline" / "Chart.yaml").read_text()
    match = re.search(r'^appVersion:\s*"?([^"\s]+)"?', text, re.M)
    if not match:
        raise bs.BootstrapError("images: no appVersion in charts/userpipeline/Chart.yaml: add one")
    return match.group(1)


def source_files(names: tuple[str, ...]) -> list[Path]:
    files: list[Path] = []
    for name in names:
        path = bs.ROOT / name
        candidates = sorted(path.rglob("*")) if path.is_dir() else [path]
        files += [p for p in candidates if p.is_file() and not SKIP.search(p.relative_to(bs.ROOT).as_posix())]
    return files


def inputs_key(files: list[Path], *extra: str) -> str:
    h = hashlib.sha256()
    for item in extra:
        h.update(item.encode() + b"\0")
    for path in files:
        h.update(path.relative_to(bs.ROOT).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:12]


def build(name: str, dockerfile: Path, ref: str, build_args: dict[str, str], dest: Path) -> None:
    """`podman build` of one of the project's Dockerfiles into a docker-archive at `dest`."""
    podman = podman_base()
    args = [f"--build-arg={k}={v}" for k, v in build_args.items()]
    args += [f"--volume={f}:{f}:ro" for f in TRUST_FILES if Path(f).is_file()]
    bs.say(STEP, f"building {ref} from {dockerfile.relative_to(bs.ROOT)} with podman (takes minutes when its inputs changed)")
    bs.run(["nice", "-n", "10", *podman, "build", "--network", "host", "--pull=never",
            "--ignorefile", str(dockerfile.with_name(dockerfile.name + ".dockerignore")),
            "-f", str(dockerfile), "-t", ref, *args, str(bs.ROOT)], STEP)
    tmp = dest.with_name(dest.name + ".partial")
    tmp.unlink(missing_ok=True)  # `podman save` will not overwrite
    bs.run([*podman, "save", "--format", "docker-archive", "-o", str(tmp), ref], STEP)
    tmp.replace(dest)
    for old in dest.parent.glob(f"{name}-*.tar"):
        if old != dest:
            old.unlink()
    # Untagged layers of earlier builds: the archive keeps what is needed, the store stays small.
    subprocess.run([*podman, "image", "prune", "-f"], capture_output=True, check=False)


def load_base(base: Path) -> None:
    bs.run([*podman_base(), "load", "-i", str(base)], STEP)


def app_image(base_archive: Path, images: Path) -> dict:
    dockerfile = bs.ROOT / "images" / "userpipeline" / "Dockerfile"
    ignore = dockerfile.with_name("Dockerfile.dockerignore")
    ref = f"docker.io/library/userpipeline:{app_version()}"
    key = inputs_key([dockerfile, ignore, *source_files(APP_SOURCES)], ref, base_archive.name)
    dest = images / f"userpipeline-{key}.tar"
    if dest.exists():
        bs.say(STEP, f"cached {dest}")
    else:
        load_base(base_archive)
        build("userpipeline", dockerfile, ref, {"PYTHON_IMAGE": bn.BASE_REF}, dest)
        bs.say(STEP, f"saved {dest} ({dest.stat().st_size / 1e6:.0f} MB)")
    return {"ref": ref, "archive": str(dest)}


def step_images(manifest: dict) -> None:
    bs.require("podman", "install it: `tools/bootstrap.py --only node` (apt-get install podman)")
    images = bs.CACHE / "images"
    images.mkdir(parents=True, exist_ok=True)
    base_archive = bn.build_base(images)  # the node step's base: cached, built only if missing
    manifest["images"] = {"userpipeline": app_image(base_archive, images)}


def main() -> None:
    bs.HINTS.setdefault(STEP, HINT)
    bs.CACHE.mkdir(parents=True, exist_ok=True)
    manifest: dict = {}
    try:
        step_images(manifest)
    except bs.BootstrapError:
        raise
    except Exception as exc:  # noqa: BLE001 - every failure gets a readable message and a hint
        raise bs.BootstrapError(f"{STEP}: {type(exc).__name__}: {exc}\nwhat to do: {HINT}") from exc
    path = bs.CACHE / "manifest.json"
    recorded = json.loads(path.read_text()) if path.exists() else {}
    tmp = path.with_suffix(".images.partial")
    tmp.write_text(json.dumps({**recorded, **manifest}, indent=2))
    tmp.replace(path)


if __name__ == "__main__":
    main()
