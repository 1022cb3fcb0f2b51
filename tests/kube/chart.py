"""Render the chart's operator templates with helm (the real chart, its upstream subcharts off)."""

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


CHART = ROOT / "charts" / "userpipeline"
SUBCHARTS = ("strimzi-kafka-operator", "k8ssandra-operator", "spark-operator", "mongodb-kubernetes")


def render_operator(release: str, namespace: str, values: dict | None = None, chart_values: dict | None = None) -> list[dict]:
    """`helm template` of the real chart, only templates/operator-*.yaml: `values` override the operator block,
    `chart_values` other top-level blocks (e.g. external stores)."""
    with tempfile.TemporaryDirectory() as tmp:
        overrides = Path(tmp) / "values.yaml"
        overrides.write_text(yaml.safe_dump({"operator": values or {}, **{c: {"enabled": False} for c in SUBCHARTS},
                                             **(chart_values or {})}))
        show = [arg for path in sorted(TEMPLATES.glob("operator-*.yaml")) for arg in ("-s", f"templates/{path.name}")]
        out = subprocess.run([helm_binary(), "template", release, str(CHART), "--namespace", namespace,
                              "-f", str(overrides), *show], check=True, capture_output=True, text=True).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]
