"""The producer's config-sync sidecar, run as the producer's own ServiceAccount (the Role the operator made):
it mirrors the ConfigMap into the file the producer watches, and may read nothing else."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from kube.controlplane import ControlPlane
from kube.pipelines import get_pipeline, patch_spec, pipeline
from kube.resources import condition, wait_for
from userpipeline.operator.kube.client import ApiException, Kube
from userpipeline.operator.spec import load_userpipeline


def written_rate(path: Path) -> float | None:
    try:
        return load_userpipeline(path).spec.producer.rate_per_second
    except (OSError, ValueError):
        return None


def test_config_sync_follows_rate_changes_as_the_producer_account(admin: Kube, operator, namespace: str,
                                                                  control_plane: ControlPlane, tmp_path: Path) -> None:
    admin.create(pipeline("feed", namespace, {"producer": {"ratePerSecond": 40}}))
    # Applied (its Deployment is not available: no kubelet here), which is all the sidecar needs.
    wait_for(lambda: condition(get_pipeline(admin, "feed", namespace), "Producer").get("reason") in
             ("NotAvailable", "Applied"), what="the producer's children")
    token = control_plane.service_account_token(namespace, "feed-producer")
    kubeconfig = control_plane.token_kubeconfig(tmp_path / "producer.kubeconfig", token)
    out = tmp_path / "etc" / "pipeline.yaml"
    env = {**os.environ, "KUBECONFIG": str(kubeconfig), "POD_NAMESPACE": namespace, "PYTHONSAFEPATH": "1"}
    with open(tmp_path / "sync.log", "wb") as log:
        sync = subprocess.Popen([sys.executable, "-m", "userpipeline.operator.kube.configsync",
                                 "--configmap", "feed-config", "--out", str(out)], env=env, stdout=log,
                                stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: written_rate(out) == 40, 30, what="the first copy of the config")
        patch_spec(admin, namespace, "feed", {"producer": {"ratePerSecond": 250}})
        wait_for(lambda: written_rate(out) == 250, 30, what="the new rate in the file")
        assert sync.poll() is None, (tmp_path / "sync.log").read_text()
    finally:
        sync.terminate()
        sync.wait(10)

    producer = Kube(control_plane.api_client(kubeconfig))
    for kind, name in (("ConfigMap", "other"), ("Secret", "userpipeline-mongo")):
        with pytest.raises(ApiException) as denied:
            producer.get("v1", kind, name, namespace)
        assert denied.value.status == 403
