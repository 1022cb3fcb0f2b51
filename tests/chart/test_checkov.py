"""checkov (Kubernetes policies) on the chart as rendered and on the objects the operator makes for a
UserPipeline: no failed check, except those listed with a reason in checkov-skips.yaml. The upstream
operators' own manifests (the vendored subcharts) are theirs to fix and are not scanned."""

from __future__ import annotations

from pathlib import Path

import pytest

from kube.checkov import CHECKOV_VERSION, checkov_binary, describe, failed_checks, load_skips, write_manifests
from kube.children import chart_settings, operator_children
from kube.render import by_kind, ours, render

SKIPS = Path(__file__).with_name("checkov-skips.yaml")
# The chart as users install it, with the optional parts on (a UserPipeline, its helm test pod, an HTTPRoute).
VALUES = {"pipeline": {"create": True}, "dashboard": {"httpRoute": {"enabled": True,
                                                                    "parentRefs": [{"name": "gateway"}]}}}


@pytest.fixture(scope="module")
def checkov() -> str:
    binary = checkov_binary()
    if binary is None:
        pytest.fail(f"checkov {CHECKOV_VERSION} not found: run `make bootstrap` (or `python3.11 -m venv "
                    f"~/.cache/userpipeline/checkov-{CHECKOV_VERSION} && ~/.cache/userpipeline/checkov-"
                    f"{CHECKOV_VERSION}/bin/pip install checkov=={CHECKOV_VERSION}`)")
    return binary


@pytest.fixture(scope="module")
def chart_docs() -> list[dict]:
    return ours(render(VALUES))  # not the subcharts' templates


def test_chart_passes_checkov(checkov: str, chart_docs: list[dict], tmp_path: Path) -> None:
    failed, passed = failed_checks(checkov, write_manifests(chart_docs, tmp_path / "chart"), load_skips(SKIPS))
    assert passed > 0, "checkov checked nothing"
    assert not failed, "\n".join(map(describe, failed))


def test_operator_children_pass_checkov(checkov: str, chart_docs: list[dict], tmp_path: Path) -> None:
    children = operator_children(chart_settings(chart_docs))
    assert {d["kind"] for d in children} >= {"Deployment", "CronJob", "Service", "Ingress", "Role"}
    # with the chart's NetworkPolicies, which select the children's pods (CKV2_K8S_6 looks for them)
    scanned = [*children, *by_kind(chart_docs, "NetworkPolicy")]
    failed, passed = failed_checks(checkov, write_manifests(scanned, tmp_path / "children"), load_skips(SKIPS))
    assert passed > 0, "checkov checked nothing"
    assert not failed, "\n".join(map(describe, failed))
