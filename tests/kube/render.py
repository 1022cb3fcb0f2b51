"""The whole chart rendered with helm (dependencies on), and checks of what it renders against the schemas
the API server would use: Kubernetes' own (kubernetes-validate) and the CRDs the chart installs."""

from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import kubernetes_validate
import yaml
from jsonschema import Draft7Validator

from kube.chart import CHART, helm_binary

RELEASE, NAMESPACE = "up", "userpipeline"
KUBE_VERSION = "1.36.3"  # the test control plane's version (tools/versions.toml)
# K8ssandra's chart renders its Issuer and Certificates only where cert-manager is served (a prerequisite).
API_VERSIONS = ("cert-manager.io/v1",)
PLATFORM_LABEL, PLATFORM_KEY = "userpipeline.io/platform", "resources.yaml"
Doc = dict[str, Any]
LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: the CRDs alone are 7 MB of YAML


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([helm_binary(), *args], capture_output=True, text=True, timeout=300)
    if check and proc.returncode != 0:
        raise AssertionError(f"helm {' '.join(args[:3])} ... failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc


def values_args(values: dict | None, directory: Path) -> list[str]:
    if not values:
        return []
    path = directory / "values.yaml"
    path.write_text(yaml.safe_dump(values))
    return ["-f", str(path)]


def template_args(release: str = RELEASE, namespace: str = NAMESPACE) -> list[str]:
    return ["template", release, str(CHART), "--namespace", namespace, "--kube-version", KUBE_VERSION,
            *[arg for api in API_VERSIONS for arg in ("--api-versions", api)]]


def render(values: dict | None = None, *extra: str, release: str = RELEASE, namespace: str = NAMESPACE,
           check: bool = True) -> list[Doc] | subprocess.CompletedProcess:
    """`helm template` of the whole chart; the documents, or (check=False) the completed process."""
    with tempfile.TemporaryDirectory() as tmp:
        proc = helm(*template_args(release, namespace), *values_args(values, Path(tmp)), *extra, check=check)
    if not check:
        return proc
    return [doc for doc in yaml.load_all(proc.stdout, Loader=LOADER) if doc]


def by_kind(docs: list[Doc], kind: str) -> list[Doc]:
    return [d for d in docs if d.get("kind") == kind]


def named(docs: list[Doc], kind: str, suffix: str) -> Doc:
    found = [d for d in by_kind(docs, kind) if d["metadata"]["name"].endswith(suffix)]
    assert len(found) == 1, f"expected one {kind} *{suffix}, found {[d['metadata']['name'] for d in found]}"
    return found[0]


def ours(docs: list[Doc]) -> list[Doc]:
    """The documents of our chart's own templates (helm.sh/chart: userpipeline-<version>), not the subcharts'."""
    return [d for d in docs
            if ((d.get("metadata") or {}).get("labels") or {}).get("helm.sh/chart", "").startswith("userpipeline-")]


def platform_resources(docs: list[Doc]) -> list[Doc]:
    """The custom resources the chart hands to the operator (the platform ConfigMap's resources.yaml)."""
    maps = [d for d in by_kind(docs, "ConfigMap")
            if (d["metadata"].get("labels") or {}).get(PLATFORM_LABEL) == "true"]
    return [r for cm in maps for r in yaml.safe_load_all(cm["data"][PLATFORM_KEY]) if r]


def containers(doc: Doc) -> list[Doc]:
    spec = pod_spec(doc) or {}
    return [*spec.get("initContainers", []), *spec.get("containers", [])]


def pod_spec(doc: Doc) -> Doc | None:
    kind, spec = doc.get("kind"), doc.get("spec") or {}
    if kind == "Pod":
        return spec
    if kind == "CronJob":
        return spec["jobTemplate"]["spec"]["template"]["spec"]
    if kind in ("Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicaSet"):
        return spec["template"]["spec"]
    return None


# -- validation ---------------------------------------------------------------------------------------
_CHECKED: dict[str, list[str]] = {}  # most documents render the same in every value set: check each once


def kubernetes_problems(doc: Doc) -> list[str]:
    """What the Kubernetes API schema (strict: unknown fields too) says is wrong with a built-in object."""
    key = json.dumps(doc, sort_keys=True)
    if key not in _CHECKED:
        try:
            kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)
            _CHECKED[key] = []
        except kubernetes_validate.ValidationError as exc:
            _CHECKED[key] = [f"{_key(doc)}: {'/'.join(map(str, exc.path))}: {exc.message}"]
    return _CHECKED[key]


def _strict(schema: Any) -> Any:
    """An openAPIV3Schema as the API server applies it with strict field validation: unknown fields are errors
    (unless x-kubernetes-preserve-unknown-fields), `nullable` allows null."""
    if isinstance(schema, list):
        return [_strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _strict(v) for k, v in schema.items()}
    if "properties" in out and "additionalProperties" not in out \
            and not out.get("x-kubernetes-preserve-unknown-fields"):
        out["additionalProperties"] = False
    if out.get("nullable") and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    return out


class CrdSchemas:
    """The structural schemas of the CRDs rendered by the chart (ours and the upstream subcharts')."""

    def __init__(self, crds: list[Doc]):
        self._validators: dict[tuple[str, str], Draft7Validator] = {}
        for crd in crds:
            group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
            for version in crd["spec"]["versions"]:
                if version.get("served"):
                    schema = dict(_strict(version["schema"]["openAPIV3Schema"]))
                    # metadata is checked by the API server itself, not by the CRD's schema
                    schema.setdefault("properties", {}).pop("metadata", None)
                    for meta in ("apiVersion", "kind", "metadata"):
                        schema["properties"].setdefault(meta, {})
                    self._validators[(f"{group}/{version['name']}", kind)] = Draft7Validator(schema)

    def kinds(self) -> set[tuple[str, str]]:
        return set(self._validators)

    def problems(self, doc: Doc) -> list[str]:
        validator = self._validators.get((doc.get("apiVersion"), doc.get("kind")))
        if validator is None:
            return [f"{_key(doc)}: no CRD serves {doc.get('apiVersion')} {doc.get('kind')}"]
        return [f"{_key(doc)}: /{'/'.join(map(str, e.absolute_path))}: {e.message}"
                for e in validator.iter_errors(doc)]


def _key(doc: Doc) -> str:
    return f"{doc.get('kind')}/{(doc.get('metadata') or {}).get('name')}"


def crds_in(docs: list[Doc]) -> list[Doc]:
    return by_kind(docs, "CustomResourceDefinition")


BUILT_IN_GROUPS = ("", "apps", "batch", "rbac.authorization.k8s.io", "networking.k8s.io", "policy",
                   "admissionregistration.k8s.io", "apiextensions.k8s.io", "autoscaling", "coordination.k8s.io",
                   "scheduling.k8s.io", "storage.k8s.io")


def is_built_in(doc: Doc) -> bool:
    api = doc.get("apiVersion", "")
    return (api.split("/")[0] if "/" in api else "") in BUILT_IN_GROUPS


def all_problems(docs: list[Doc], schemas: CrdSchemas, externals: tuple[str, ...] = ()) -> list[str]:
    """Every rendered document against its schema; `externals`: API groups whose CRDs are prerequisites
    installed outside the chart (cert-manager), checked by the install test instead."""
    problems: list[str] = []
    for doc in docs:
        group = doc.get("apiVersion", "").split("/")[0]
        if is_built_in(doc):
            problems += kubernetes_problems(doc)
        elif group not in externals:
            problems += schemas.problems(doc)
    return problems
