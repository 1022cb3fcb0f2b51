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

import contextlib
import fcntl
import hashlib
import os
import re
import resource
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bootstrap as bs  # noqa: E402 - tools/bootstrap.py, found through the line above
import bootstrap_node as bn  # noqa: E402

STEP = "images"
# What the application image's build reads besides its Dockerfile (the Dockerfile's COPY lines).
APP_SOURCES = ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "operator", "jobs", "dashboard")
# Mounted into RUN steps when the host has them (module docstring); each keeps its path.
TRUST_FILES = ("/etc/ssl/certs/ca-certificates.crt", "/etc/pip.conf", "/etc/ssl/certs/java/cacerts")
KEEP_BUILDS = 3  # archives kept per image
DERIVE_RECIPE = "podman run --unsetenv=TERM --unsetenv=container; commit"  # change when derive() commits otherwise
SPARK_SOURCES = (*APP_SOURCES, "images/spark/stream.py", "tools/maven/spark-kafka/pom.xml")
# The stand-ins for the public SPARK_IMAGE and MAVEN_IMAGE: the Debian base plus Debian packages (Java 17), and for
# Spark the runtime from the pyspark wheel laid out as apache/spark has it (/opt/spark, /opt/entrypoint.sh, uid 185).
SPARK_PACKAGES = ("openjdk-17-jre-headless", "tini", "procps")
MAVEN_PACKAGES = ("maven",)
SPARK_ENTRYPOINT = Path(__file__).resolve().parent / "images" / "spark-entrypoint.sh"
SPARK_UID = 185
JAVA_HOME = "/usr/lib/jvm/java-17-openjdk-amd64"
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
    # Earlier builds of this image (not userpipeline-spark-*): keep the newest few, since another clone sharing the
    # cache (a CI checkout) may have just recorded one of them in the manifest.
    builds = [p for p in dest.parent.glob(f"{name}-*.tar") if re.fullmatch(rf"{re.escape(name)}-[0-9a-f]{{12}}\.tar", p.name)]
    for old in sorted(builds, key=lambda p: p.stat().st_mtime, reverse=True)[KEEP_BUILDS:]:
        old.unlink(missing_ok=True)
    # Untagged layers of earlier builds: the archive keeps what is needed, the store stays small.
    subprocess.run([*podman, "image", "prune", "-f"], capture_output=True, check=False)


def load_base(base: Path) -> None:
    bs.run([*podman_base(), "load", "-i", str(base)], STEP)


def ulimits() -> list[str]:
    """`podman run` asks runc for rlimits this host will not grant (nofile above its hard limit, nproc above
    pid_max): ask for what the host has."""
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    nproc = min(resource.getrlimit(resource.RLIMIT_NPROC)[1], int(Path("/proc/sys/kernel/pid_max").read_text()))
    return [f"--ulimit=nofile={nofile}:{nofile}", f"--ulimit=nproc={nproc}:{nproc}"]


def derive(ref: str, script: str, changes: list[str], volumes: tuple[str, ...] = ()) -> None:
    """`ref` = the Debian base after `script` (a `podman run` then `podman commit`), unless the store has it."""
    podman = podman_base()
    if subprocess.run([*podman, "image", "exists", ref], capture_output=True).returncode == 0:
        bs.say(STEP, f"cached {ref} (podman store)")
        return
    bs.say(STEP, f"making {ref} from {bn.BASE_REF} (Debian packages; first run only)")
    container = "upl-derive-" + hashlib.sha256(ref.encode()).hexdigest()[:8]
    subprocess.run([*podman, "rm", "-f", container], capture_output=True, check=False)
    try:
        # --unsetenv: what `podman run` itself adds to the environment would otherwise be committed too.
        bs.run(["nice", "-n", "10", *podman, "run", "--name", container, "--network", "host", *ulimits(),
                "--unsetenv=TERM", "--unsetenv=container",
                *[f"--volume={v}" for v in volumes], bn.BASE_REF, "sh", "-ec", script], STEP)
        bs.run([*podman, "commit", "-q", *[f"--change={c}" for c in changes], container, ref], STEP)
    finally:
        subprocess.run([*podman, "rm", "-f", container], capture_output=True, check=False)
    repository = ref.rsplit(":", 1)[0]  # earlier keys of this base: the store keeps only the current one
    listed = subprocess.run([*podman, "images", "--format", "{{.Repository}}:{{.Tag}}", "--filter",
                             f"reference={repository}"], capture_output=True, text=True).stdout.split()
    for old in set(listed) - {ref}:
        subprocess.run([*podman, "rmi", old], capture_output=True, check=False)


def apt_install(packages: tuple[str, ...]) -> str:
    return ("export DEBIAN_FRONTEND=noninteractive; apt-get update -q; "
            f"apt-get install -y -q --no-install-recommends {' '.join(packages)}; rm -rf /var/lib/apt/lists/*")


SPARK_SCRIPT = (f"{apt_install(SPARK_PACKAGES)}; "
                f"groupadd --system --gid {SPARK_UID} spark; "
                f"useradd --system --uid {SPARK_UID} --gid {SPARK_UID} --home-dir /opt/spark spark; "
                "cp -a /staging/spark /opt/spark; install -m 0755 /staging/entrypoint.sh /opt/entrypoint.sh; "
                "mkdir -p /opt/spark/work-dir; chmod g+w /opt/spark/work-dir; chown -R spark:spark /opt/spark")
SPARK_CHANGES = ["ENV SPARK_HOME=/opt/spark", f"ENV JAVA_HOME={JAVA_HOME}", "WORKDIR /opt/spark/work-dir",
                 'ENTRYPOINT ["/opt/entrypoint.sh"]', "CMD []", f"USER {SPARK_UID}"]
MAVEN_SCRIPT = apt_install(MAVEN_PACKAGES)
MAVEN_CHANGES = ["CMD []"]


def pyspark_wheel(version: str) -> Path:
    wheels = sorted(bs.CACHE.glob(f"wheels/*/pyspark-{version}-*.whl"))
    if not wheels:
        raise bs.BootstrapError(f"{STEP}: no pyspark {version} wheel under {bs.CACHE}/wheels: run "
                                "`tools/bootstrap.py --only venv` first (it downloads the project's wheels)")
    return wheels[-1]


def stage_spark_home(wheel: Path, dest: Path) -> None:
    """/opt/spark as apache/spark lays it out, from the pyspark wheel: jars, bin, sbin, python/lib (the zips
    spark-submit puts on the PYTHONPATH of the driver and the executors' Python workers)."""
    with zipfile.ZipFile(wheel) as whl:
        for info in whl.infolist():
            parts = info.filename.split("/")
            if info.is_dir() or parts[0] != "pyspark" or parts[1] not in ("jars", "bin", "sbin", "python"):
                continue
            if info.filename.endswith(".cmd") or (parts[1] == "python" and not info.filename.endswith(".zip")):
                continue
            target = dest / "/".join(parts[1:])
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(whl.read(info))
            target.chmod(0o755 if parts[1] in ("bin", "sbin") else 0o644)


def spark_base(version: str, key: str) -> str:
    ref = f"localhost/userpipeline/spark:{version}-{key}"
    with tempfile.TemporaryDirectory(dir=bs.CACHE / "images") as tmp:
        staging = Path(tmp)
        if subprocess.run([*podman_base(), "image", "exists", ref], capture_output=True).returncode != 0:
            stage_spark_home(pyspark_wheel(version), staging / "spark")
            (staging / "entrypoint.sh").write_bytes(SPARK_ENTRYPOINT.read_bytes())
        derive(ref, SPARK_SCRIPT, SPARK_CHANGES, (f"{staging}:/staging:ro",))
    return ref


def maven_base(key: str) -> str:
    ref = f"localhost/userpipeline/maven:{key}"
    derive(ref, MAVEN_SCRIPT, MAVEN_CHANGES)
    return ref


def spark_image(base_archive: Path, images: Path) -> dict:
    dockerfile = bs.ROOT / "images" / "spark" / "Dockerfile"
    version = bs.VERSIONS["spark_kafka"]["version"]  # = pyspark's (pyproject.toml), checked by tests/images
    ref = f"docker.io/library/userpipeline-spark:{app_version()}"
    base_key = inputs_key([SPARK_ENTRYPOINT], base_archive.name, DERIVE_RECIPE, SPARK_SCRIPT, *SPARK_CHANGES,
                          MAVEN_SCRIPT, *MAVEN_CHANGES)
    files = [dockerfile, dockerfile.with_name("Dockerfile.dockerignore"), *source_files(SPARK_SOURCES)]
    dest = images / f"userpipeline-spark-{inputs_key(files, ref, base_key, version)}.tar"
    if dest.exists():
        bs.say(STEP, f"cached {dest}")
    else:
        load_base(base_archive)
        args = {"SPARK_IMAGE": spark_base(version, base_key), "MAVEN_IMAGE": maven_base(base_key),
                "PYTHON_IMAGE": bn.BASE_REF}
        build("userpipeline-spark", dockerfile, ref, args, dest)
        bs.say(STEP, f"saved {dest} ({dest.stat().st_size / 1e6:.0f} MB)")
    return {"ref": ref, "archive": str(dest)}


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


@contextlib.contextmanager
def store_lock(images: Path):
    """One image build at a time per cache: clones sharing it (a CI checkout) tag the same refs, and `podman save`
    of a ref another build just moved would archive the wrong image."""
    with (images / ".build.lock").open("w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            bs.say(STEP, f"waiting for another bootstrap's image build (lock {images / '.build.lock'})")
            fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def step_images(manifest: dict) -> None:
    bs.require("podman", "install it: `tools/bootstrap.py --only node` (apt-get install podman)")
    images = bs.CACHE / "images"
    images.mkdir(parents=True, exist_ok=True)
    base_archive = bn.build_base(images)  # the node step's base: cached, built only if missing
    builds = {"userpipeline": app_image, "userpipeline-spark": spark_image}
    # USERPIPELINE_IMAGES: a comma-separated subset, e.g. when no test runs the Spark image yet.
    wanted = [name for name in os.environ.get("USERPIPELINE_IMAGES", ",".join(builds)).split(",") if name]
    if unknown := sorted(set(wanted) - set(builds)):
        raise bs.BootstrapError(f"{STEP}: USERPIPELINE_IMAGES names {', '.join(unknown)}; choose from {', '.join(builds)}")
    with store_lock(images):
        manifest["images"] = {name: builds[name](base_archive, images) for name in wanted}


def main() -> None:
    """Runnable alone: the bootstrap's own run of this one step (hints, errors, manifest)."""
    bs.main(["--only", STEP])


if __name__ == "__main__":
    main()
