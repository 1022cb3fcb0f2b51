"""Render the chart's operator templates with helm, on their own (no subchart dependencies needed)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import yaml

from kube.resources import ROOT

TEMPLATES = ROOT / "charts" / "userpipeline" / "templates"
HELM_VERSION = "4.3.1"


def helm_binary() -> str:
    cache = Path(os.environ.get("USERPIPELINE_CACHE", Path.home() / ".cache" / "userpipeline"))
    manifest = cache / "manifest.json"
    listed = json.loads(manifest.read_text()).get("helm") if manifest.exists() else None
    for candidate in (listed, str(cache / "bin" / f"helm-{HELM_VERSION}"), shutil.which("helm")):
        if candidate and Path(candidate).exists():
            return candidate
    raise RuntimeError(f"helm not found: `go install helm.sh/helm/v4/cmd/helm@v{HELM_VERSION}` "
                       f"and put it at {cache / 'bin' / f'helm-{HELM_VERSION}'}")


def render_operator(release: str, namespace: str, values: dict | None = None) -> list[dict]:
    """`helm template` of templates/operator-*.yaml in a throw-away chart."""
    with tempfile.TemporaryDirectory() as tmp:
        chart = Path(tmp) / "userpipeline"
        (chart / "templates").mkdir(parents=True)
        (chart / "Chart.yaml").write_text("apiVersion: v2\nname: userpipeline\nversion: 0.1.0\nappVersion: \"0.1.0\"\n")
        for path in TEMPLATES.glob("operator-*.yaml"):
            shutil.copy(path, chart / "templates" / path.name)
        (chart / "values.yaml").write_text(yaml.safe_dump({"operator": values or {}}))
        out = subprocess.run([helm_binary(), "template", release, str(chart), "--namespace", namespace],
                             check=True, capture_output=True, text=True).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]
