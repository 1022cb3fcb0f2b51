"""The Kubernetes quick start (README.md) and docs/kubernetes.md "By hand" are followed verbatim by newcomers:
their commands name the files, images, versions and resources the recipes (tools/cluster) and the chart use."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import yaml

from userpipeline.operator.spec import load_userpipeline

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "userpipeline"
APP_VERSION = yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"]
VALUES = yaml.safe_load((CHART / "values.yaml").read_text())
IMAGES = {f"{VALUES[block]['repository']}:{APP_VERSION}" for block in ("image", "sparkImage")}
KIND_NAME = yaml.safe_load((ROOT / "manifests" / "kind-cluster.yaml").read_text())["name"]
CERT_MANAGER = re.search(r'CERT_MANAGER_VERSION="([^"]+)"', (ROOT / "tools" / "cluster" / "lib.sh").read_text())[1]


def section(path: Path, heading: str) -> str:
    text = path.read_text()
    start = text.index(heading)
    end = text.find("\n## ", start + len(heading))
    return text[start:end if end > 0 else None]


def commands(markdown: str) -> list[list[str]]:
    """Each shell command in the ```bash blocks (continuations joined, comments dropped)."""
    found = []
    for block in re.findall(r"```bash\n(.*?)```", markdown, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if words:
                found.append(words)
    return found


SOURCES = {"README": section(ROOT / "README.md", "## Kubernetes quick start"),
           "docs": section(ROOT / "docs" / "kubernetes.md", "## By hand")}


@pytest.fixture(params=sorted(SOURCES), scope="module")
def cmds(request) -> list[list[str]]:
    found = commands(SOURCES[request.param])
    assert found, request.param
    return found


def matching(cmds: list[list[str]], *prefix: str) -> list[list[str]]:
    return [cmd for cmd in cmds if cmd[:len(prefix)] == list(prefix)]


def test_images_loaded_are_the_ones_make_images_builds(cmds: list[list[str]]) -> None:
    assert matching(cmds, "make", "images")
    kind_loads = matching(cmds, "kind", "load", "docker-image")
    minikube_loads = matching(cmds, "minikube", "image", "load")
    assert kind_loads or minikube_loads
    for cmd in kind_loads:
        assert cmd[cmd.index("--name") + 1] == KIND_NAME and set(cmd[5:]) == IMAGES
    if minikube_loads:
        assert {cmd[-1] for cmd in minikube_loads} == IMAGES


def test_cluster_cert_manager_and_chart_commands_match_the_recipes(cmds: list[list[str]]) -> None:
    for cmd in matching(cmds, "kind", "create", "cluster"):
        assert (ROOT / cmd[cmd.index("--config") + 1]).is_file()
    for cmd in matching(cmds, "kubectl", "label", "node"):
        assert cmd[3] == f"{KIND_NAME}-control-plane"
    [cert_manager, *_] = matching(cmds, "helm", "upgrade", "--install", "cert-manager")
    assert cert_manager[cert_manager.index("--version") + 1] == CERT_MANAGER and "crds.enabled=true" in cert_manager
    [install, *_] = matching(cmds, "helm", "install", "userpipeline")
    assert install[3] == "charts/userpipeline" and "--wait" in install
    assert install[install.index("-n") + 1] == "userpipeline"


def test_the_sample_applied_is_the_one_waited_for_and_opened(cmds: list[list[str]]) -> None:
    applies = matching(cmds, "kubectl", "-n", "userpipeline", "apply")
    [name] = {load_userpipeline(ROOT / cmd[cmd.index("-f") + 1]).metadata.name for cmd in applies}
    waits = matching(cmds, "kubectl", "-n", "userpipeline", "wait")
    assert len(waits) == len(applies)
    assert all("--for=condition=Ready" in wait and f"upl/{name}" in wait for wait in waits)
    for cmd in matching(cmds, "kubectl", "-n", "userpipeline", "get", "ingress"):
        assert cmd[5] == f"{name}-dashboard"


def test_readme_names_the_prerequisites_and_the_inner_loop() -> None:
    readme = SOURCES["README"]
    for needed in ("Docker or Podman", "kind or minikube", "Helm 3.19", "Helm 4", "kubectl", "skaffold dev",
                   "make kind", "make minikube", "minikube tunnel"):
        assert needed in readme, needed
