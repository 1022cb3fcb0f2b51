#!/usr/bin/env python3
"""Bootstrap everything userpipeline needs on a machine without internet access to project sites.

Idempotent and cached by version outside the clone ($USERPIPELINE_CACHE, default
~/.cache/userpipeline): Python wheels, Kafka/Cassandra/Spark-Kafka jars from Maven Central,
FerretDB and the Kubernetes control plane built from the Go module proxy, and Debian's Chromium.
The virtual environment lives in the clone (.venv) because the project is installed editable.
Writes $USERPIPELINE_CACHE/manifest.json, which the runtime reads to find every artifact.

Standard library only: it runs before the virtual environment exists.
Usage: tools/bootstrap.py [--only venv,jars,ferretdb,kube,node,images,helm,checkov,browser]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VERSIONS = tomllib.loads((ROOT / "tools" / "versions.toml").read_text())
CACHE = Path(os.environ.get("USERPIPELINE_CACHE", Path.home() / ".cache" / "userpipeline"))
VENV = ROOT / ".venv"
STEPS = ("venv", "jars", "ferretdb", "kube", "node", "images", "helm", "checkov", "browser")


class BootstrapError(SystemExit):
    def __init__(self, message: str):
        super().__init__(f"bootstrap: {message}")


def say(step: str, message: str) -> None:
    print(f"[bootstrap] {step:<9} {message}", flush=True)


# What to do when a step's command fails, shown under the command's own output.
HINTS = {
    "venv": "check that PyPI is reachable (pip's proxy/index settings) and that python3.11-venv is installed, "
            "then rerun `make bootstrap`",
    "jars": "check that Maven Central is reachable (proxy in ~/.m2/settings.xml) and Java 17 is installed, "
            "then rerun `make bootstrap` (partial downloads are discarded)",
    "ferretdb": "check that the Go module proxy is reachable (GOPROXY) and `go version` is 1.26 or later, then rerun",
    "kube": "check that the Go module proxy is reachable (GOPROXY) and `go version` is 1.26 or later, then rerun",
    "node": "check that the Go module proxy (GOPROXY) and the Debian mirror (`apt-get update`) are reachable, then rerun",
    "images": "check that `podman info` works (the `node` step installs podman and runc), that PyPI and the "
              "Debian mirror are reachable, and read the build's output above; then rerun "
              "`tools/bootstrap.py --only images` (a broken store: `rm -rf ~/.cache/userpipeline/podman`)",
    "checkov": "check that PyPI is reachable (pip's proxy/index settings), then rerun `make bootstrap`",
    "helm": "check that the Go module proxy is reachable (GOPROXY) and `go version` is 1.26 or later, then rerun",
    "browser": "check that the Debian mirror is reachable (`apt-get update`), or install them yourself: "
               "`sudo apt-get install -y chromium chromium-driver`, then rerun",
}
# apt and dpkg take these locks; another apt-get (or unattended-upgrades) may hold them for minutes.
APT_LOCKS = (Path("/var/lib/dpkg/lock-frontend"), Path("/var/lib/dpkg/lock"), Path("/var/lib/apt/lists/lock"))
APT_LOCK_TIMEOUT = 600


def run(cmd: list[str], step: str, **kwargs) -> None:
    """Run a command; on failure show its output's tail and what to do."""
    started = time.monotonic()
    # PYTHONSAFEPATH: never let the clone's `operator/` folder shadow the standard library's module.
    kwargs["env"] = {**kwargs.get("env", os.environ), "PYTHONSAFEPATH": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, **kwargs)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-25:])
        hint = HINTS.get(step, "read the output above, fix the cause, then rerun `make bootstrap`")
        raise BootstrapError(f"{step}: `{' '.join(cmd[:4])} ...` failed (exit {proc.returncode}):\n{tail}\n"
                             f"what to do: {hint}")
    say(step, f"  ran {Path(cmd[0]).name} {' '.join(cmd[1:3])} in {time.monotonic() - started:.0f}s")


def digest(*paths: Path) -> str:
    h = hashlib.sha256()
    for p in paths:
        h.update(p.read_bytes())
    return h.hexdigest()[:12]


def java_home() -> Path:
    """Find a Java 17 runtime: JAVA_HOME if it is 17, else the Debian or Temurin 17 install."""
    want = VERSIONS["java"]["major"]
    candidates = [os.environ.get("JAVA_HOME", ""), *sorted(map(str, Path("/usr/lib/jvm").glob(f"*{want}*")))]
    for home in filter(None, candidates):
        java = Path(home) / "bin" / "java"
        if java.exists():
            out = subprocess.run([str(java), "-version"], capture_output=True, text=True).stderr
            if f'version "{want}.' in out:
                return Path(home)
    raise BootstrapError(f"Java {want} not found: install it (apt-get install openjdk-{want}-jdk-headless) or set JAVA_HOME")


def require(tool: str, hint: str) -> str:
    path = shutil.which(tool)
    if not path:
        raise BootstrapError(f"`{tool}` is not on PATH: {hint}")
    return path


def step_venv(manifest: dict) -> None:
    key = digest(ROOT / "pyproject.toml", ROOT / "setup.py")
    stamp = VENV / ".bootstrap-stamp"
    if stamp.exists() and stamp.read_text() == key:
        say("venv", f"up to date ({VENV})")
    else:
        if sys.version_info[:2] != (3, 11):
            raise BootstrapError(f"Python 3.11 is required, this is {sys.version.split()[0]}: run with python3.11")
        wheels = CACHE / "wheels" / digest(ROOT / "pyproject.toml")  # the dependencies live there
        if not (wheels / ".complete").exists():
            say("venv", f"downloading wheels into {wheels} (first run only)")
            wheels.mkdir(parents=True, exist_ok=True)
            run([sys.executable, "-m", "pip", "wheel", "-q", "--wheel-dir", str(wheels), f"{ROOT}[all]",
                 "setuptools==84.2.1", "wheel"], "venv")
            (wheels / ".complete").write_text(key)
        say("venv", f"creating {VENV} from cached wheels")
        shutil.rmtree(VENV, ignore_errors=True)
        run([sys.executable, "-m", "venv", str(VENV)], "venv")
        pip = [str(VENV / "bin" / "python"), "-m", "pip", "install", "-q", "--no-index", "--find-links", str(wheels)]
        run(pip + ["setuptools==84.2.1", "wheel"], "venv")
        run(pip + ["--no-build-isolation", "-e", f"{ROOT}[all]"], "venv")
        stamp.write_text(key)
    manifest["python"] = str(VENV / "bin" / "python")


def maven_fetch(name: str, dest: Path, extra: list[str] | None = None) -> None:
    spec = VERSIONS[name]
    if (dest / ".complete").exists():
        say("jars", f"{name} {spec['version']} cached")
        return
    say("jars", f"fetching {name} {spec['version']} from Maven Central into {dest}")
    require("mvn", "install Maven (apt-get install maven)")
    tmp = dest.with_suffix(".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    run(["mvn", "-q", "-B", "-f", str(ROOT / spec["pom"]), "dependency:copy-dependencies",
         "-DincludeScope=runtime", f"-DoutputDirectory={tmp}", *(extra or [])], "jars")
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)
    (dest / ".complete").write_text(spec["version"])


def step_jars(manifest: dict) -> None:
    home = java_home()
    manifest["java_home"] = str(home)
    say("jars", f"using Java at {home}")
    for name in ("kafka", "cassandra"):
        dest = CACHE / "jars" / f"{name}-{VERSIONS[name]['version']}"
        maven_fetch(name, dest)
        manifest[f"{name}_lib"] = str(dest)
    spec = VERSIONS["spark_kafka"]
    dest = CACHE / "jars" / f"spark-kafka-{spec['version']}"
    maven_fetch("spark_kafka", dest, [f"-DincludeArtifactIds={','.join(spec['artifacts'])}"])
    manifest["spark_jars"] = sorted(str(p) for p in dest.glob("*.jar"))


def go_build(step: str, module: str, binary: Path, ldflags: str = "", package: str = ".") -> None:
    """`go build` of `package` (the wrapper module itself, or a tool it names) with the wrapper's go.mod."""
    if binary.exists():
        say(step, f"cached {binary}")
        return
    require("go", "install Go 1.26 (https://go.dev/doc/install) or apt-get install golang")
    say(step, f"building {binary.name} from the Go module proxy (first run only; this can take minutes)")
    binary.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "CGO_ENABLED": "0", "GOFLAGS": "-mod=mod"}
    tmp = binary.with_suffix(".partial")
    run(["go", "build", "-trimpath", f"-ldflags=-s -w {ldflags}".strip(), "-o", str(tmp), package], step,
        cwd=ROOT / module, env=env)
    tmp.rename(binary)


def step_ferretdb(manifest: dict) -> None:
    spec = VERSIONS["ferretdb"]
    binary = CACHE / "bin" / f"ferretdb-{spec['version']}"
    go_build("ferretdb", spec["module"], binary)
    manifest["ferretdb"] = str(binary)


def step_kube(manifest: dict) -> None:
    spec = VERSIONS["kube"]
    module = ROOT / spec["module"]
    # Keyed by the wrapper's own source too: a new command in it (e.g. the controller-manager) means a new build.
    binary = CACHE / "bin" / f"kube-{spec['version']}-etcd-{spec['etcd']}-{digest(module / 'main.go', module / 'go.mod')}"
    major, minor, _ = spec["version"].split(".")
    # Without these the API server reports v0.0.0 and derives its emulation version from it.
    version_pkg = "k8s.io/component-base/version"
    ldflags = (f"-X {version_pkg}.gitVersion=v{spec['version']} -X {version_pkg}.gitMajor={major} "
               f"-X {version_pkg}.gitMinor={minor} -X {version_pkg}.gitTreeState=clean")
    go_build("kube", spec["module"], binary, ldflags)
    manifest["kube"] = str(binary)


def step_node(manifest: dict) -> None:
    """The real node's binaries, Debian packages and images (tools/bootstrap_node.py, issue 9)."""
    sys.path.insert(0, str(ROOT / "tools"))  # PYTHONSAFEPATH keeps this script's folder off sys.path
    import bootstrap_node

    bootstrap_node.step_node(manifest)


def step_images(manifest: dict) -> None:
    """The project's images from its own Dockerfiles, with podman on the node's Debian base (tools/bootstrap_images.py)."""
    sys.path.insert(0, str(ROOT / "tools"))
    import bootstrap_images

    bootstrap_images.step_images(manifest)


def step_checkov(manifest: dict) -> None:
    """checkov in a venv of its own: it pins packaging<24, which pytest 9 cannot share."""
    version = VERSIONS["checkov"]["version"]
    venv = CACHE / f"checkov-{version}"
    marker = venv / ".complete"
    if marker.exists():
        say("checkov", f"cached {venv}")
    else:
        say("checkov", f"installing checkov {version} from PyPI into {venv} (first run only)")
        shutil.rmtree(venv, ignore_errors=True)
        run([sys.executable, "-m", "venv", str(venv)], "checkov")
        run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", f"checkov=={version}"], "checkov")
        marker.write_text(version)
    manifest["checkov"] = str(venv / "bin" / "checkov")


def step_helm(manifest: dict) -> None:
    spec = VERSIONS["helm"]
    binary = CACHE / "bin" / f"helm-{spec['version']}"
    if binary.exists():
        say("helm", f"cached {binary}")
    else:
        require("go", "install Go 1.26 (https://go.dev/doc/install) or apt-get install golang")
        say("helm", f"building helm {spec['version']} from the Go module proxy (first run only)")
        gobin = binary.parent / "helm.partial.d"
        shutil.rmtree(gobin, ignore_errors=True)
        run(["go", "install", "-trimpath", "-ldflags=-s -w", f"{spec['package']}@v{spec['version']}"], "helm",
            env={**os.environ, "CGO_ENABLED": "0", "GOBIN": str(gobin)})
        (gobin / "helm").rename(binary)
        shutil.rmtree(gobin, ignore_errors=True)
    manifest["helm"] = str(binary)


def lock_holder(path: Path) -> bool:
    """True while another process holds the fcntl lock apt/dpkg use on `path`."""
    import fcntl

    try:
        fd = os.open(path, os.O_RDWR)
    except OSError:
        return False  # missing (or not ours to open): nothing to wait for
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.lockf(fd, fcntl.LOCK_UN)
        return False
    except OSError:
        return True
    finally:
        os.close(fd)


def wait_for_package_lock(step: str, locks: tuple[Path, ...] = APT_LOCKS, timeout: float = APT_LOCK_TIMEOUT,
                          interval: float = 2.0) -> None:
    """Wait (with a progress line) while another apt/dpkg run holds the package manager's lock."""
    started = time.monotonic()
    reported = -1.0
    while busy := [str(p) for p in locks if lock_holder(p)]:
        waited = time.monotonic() - started
        if waited >= timeout:
            raise BootstrapError(f"{step}: another apt/dpkg process still holds {', '.join(busy)} after {timeout:.0f}s; "
                                 "what to do: wait for it to finish (`ps aux | grep -E 'apt|dpkg'`), then rerun")
        if waited - reported >= 10 or reported < 0:
            say(step, f"waiting for the package manager lock ({', '.join(busy)}) held by another apt/dpkg: "
                      f"{waited:.0f}s of at most {timeout:.0f}s")
            reported = waited
        time.sleep(interval)


def apt_get(*args: str) -> list[str]:
    """apt-get that waits for a busy dpkg lock instead of failing at once."""
    return ["apt-get", "-o", f"DPkg::Lock::Timeout={APT_LOCK_TIMEOUT}", *args]


def step_browser(manifest: dict) -> None:
    missing = [p for p, exe in (("chromium", "chromium"), ("chromium-driver", "chromedriver")) if not shutil.which(exe)]
    if missing:
        if os.geteuid() != 0:
            raise BootstrapError(f"missing {' '.join(missing)}: run `sudo apt-get install -y {' '.join(missing)}`")
        say("browser", f"installing {' '.join(missing)} with apt-get")
        wait_for_package_lock("browser")
        run(apt_get("update", "-q"), "browser")
        wait_for_package_lock("browser")
        run(apt_get("install", "-y", "-q", "--no-install-recommends", *missing), "browser",
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    else:
        say("browser", "chromium and chromedriver present")
    manifest["chromium"] = shutil.which("chromium")
    manifest["chromedriver"] = shutil.which("chromedriver")


def run_step(name: str, manifest: dict) -> None:
    """One step; an unexpected failure (disk full, a broken cache file...) also ends with what to do."""
    started = time.monotonic()
    try:
        globals()[f"step_{name}"](manifest)
    except BootstrapError:
        raise
    except Exception as exc:  # noqa: BLE001 - every failure gets a readable message and a hint
        raise BootstrapError(f"{name}: {type(exc).__name__}: {exc}\nwhat to do: {HINTS[name]}") from exc
    say(name, f"done in {time.monotonic() - started:.1f}s")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(STEPS), help=f"comma-separated subset of {', '.join(STEPS)}")
    steps = [s for s in parser.parse_args(argv).only.split(",") if s]
    unknown = set(steps) - set(STEPS)
    if unknown:
        raise BootstrapError(f"unknown step(s) {', '.join(sorted(unknown))}; choose from {', '.join(STEPS)}")
    CACHE.mkdir(parents=True, exist_ok=True)
    manifest_path = CACHE / "manifest.json"
    manifest: dict = {}
    started = time.monotonic()
    for name in STEPS:
        if name in steps:
            run_step(name, manifest)
    manifest["versions"] = VERSIONS
    # Merge with what an earlier (or concurrent) run recorded for the steps not run now.
    recorded = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    tmp = manifest_path.with_suffix(".partial")
    tmp.write_text(json.dumps({**recorded, **manifest}, indent=2))
    tmp.replace(manifest_path)
    say("all", f"ready in {time.monotonic() - started:.1f}s; artifacts listed in {manifest_path}")


if __name__ == "__main__":
    main()
