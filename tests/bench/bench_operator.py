"""Benchmark: time from a UserPipeline spec change to the children updated, over 50 changes.

    .venv/bin/python tests/bench/bench_operator.py [--changes 50]

Starts a real control plane, Cassandra and FerretDB, runs the operator as the chart's ServiceAccount, then
patches the spec 50 times (a rate change each time, every fifth also a retention change) and measures
- "children": patch sent -> the ConfigMap (and, for retention changes, the KafkaTopic) hold the new values;
- "ready": patch sent -> status Ready=True with observedGeneration = the new generation (stores included);
- "producer file": patch sent -> the config-sync sidecar (run here as the producer's ServiceAccount) has
  rewritten the file the producer watches with the new rate.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kube.chart import render_operator  # noqa: E402
from kube.controlplane import ControlPlane  # noqa: E402
from kube.operator_process import OperatorProcess  # noqa: E402
from kube.pipelines import (  # noqa: E402
    child,
    configured_spec,
    create_profiles_table,
    get_pipeline,
    patch_spec,
    pipeline,
    store_secrets,
    wait_ready,
)
from kube.resources import condition, install_crds, new_namespace  # noqa: E402
from userpipeline.operator.kube.client import Kube  # noqa: E402
from userpipeline.operator.local.services import CassandraService, FerretDBService  # noqa: E402
from userpipeline.operator.local.services.ports import free_port  # noqa: E402
from userpipeline.operator.spec import load_userpipeline  # noqa: E402


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def poll(check, timeout: float = 60.0) -> float:
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        if check():
            return time.perf_counter()
        time.sleep(0.005)
    raise TimeoutError("change not reconciled in time")


def file_rate(path: Path) -> float | None:
    try:
        return load_userpipeline(path).spec.producer.rate_per_second
    except (OSError, ValueError):
        return None


def start_config_sync(plane: ControlPlane, ns: str, home: Path) -> tuple[subprocess.Popen, Path]:
    token = plane.service_account_token(ns, "bench-producer")
    env = {**os.environ, "KUBECONFIG": str(plane.token_kubeconfig(home / "producer.kubeconfig", token)),
           "POD_NAMESPACE": ns, "PYTHONSAFEPATH": "1"}
    out = home / "producer" / "pipeline.yaml"
    sync = subprocess.Popen([sys.executable, "-m", "userpipeline.operator.kube.configsync", "--configmap",
                             "bench-config", "--out", str(out)], env=env, stdout=subprocess.DEVNULL)
    poll(lambda: file_rate(out) is not None)
    return sync, out


def run(changes: int, home: Path) -> None:
    cassandra = CassandraService(home / "cassandra", {"cql": free_port(), "storage": free_port()})
    mongo = FerretDBService(home / "ferretdb", {"mongo": free_port()})
    plane = ControlPlane(home / "kube")
    operator = None
    try:
        started = time.perf_counter()
        plane.start()
        admin = Kube(plane.api_client())
        install_crds(admin)
        print(f"control plane + CRDs ready in {time.perf_counter() - started:.1f}s")
        cassandra.start()
        mongo.start()
        admin.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "userpipeline-system"}})
        docs = render_operator("up", "userpipeline-system")
        for doc in docs:
            if doc["kind"] != "Deployment":
                admin.apply(doc, manager="helm")
        token = plane.service_account_token("userpipeline-system", "up-operator")
        operator = OperatorProcess(plane.token_kubeconfig(home / "op.kubeconfig", token), home / "operator.log",
                                   {"USERPIPELINE_OPERATOR_MAX_BACKOFF_SECONDS": "2"})
        operator.start()

        ns = new_namespace(admin, "bench")
        create_profiles_table(cassandra, "ks_bench")
        store_secrets(admin, ns, cassandra.contact, "ks_bench", mongo.uri, "db_bench")
        admin.create(pipeline("bench", ns))
        wait_ready(admin, "bench", ns)
        sync, out = start_config_sync(plane, ns, home)

        to_children, to_ready, to_file = [], [], []
        for index in range(changes):
            rate = 100 + index
            spec: dict = {"producer": {"ratePerSecond": rate}}
            retention = index % 5 == 4
            if retention:
                spec["topic"] = {"retention": f"{index + 1}h"}
                spec["retention"] = {"profiles": f"{10 + index}d"}
            sent = time.perf_counter()
            generation = patch_spec(admin, ns, "bench", spec)

            def children_updated() -> bool:
                if configured_spec(admin, ns, "bench").producer.rate_per_second != rate:
                    return False
                if retention:
                    topic = child(admin, ns, "bench", "raw", "KafkaTopic")
                    return topic["spec"]["config"]["retention.ms"] == (index + 1) * 3600 * 1000
                return True

            def ready() -> bool:
                obj = get_pipeline(admin, "bench", ns)
                return (obj["status"].get("observedGeneration") == generation
                        and condition(obj, "Ready").get("status") == "True")

            to_children.append(poll(children_updated) - sent)
            to_file.append(poll(lambda: file_rate(out) == rate) - sent)
            to_ready.append(poll(ready) - sent)
        sync.terminate()

        for label, values in (("children updated", to_children), ("producer file rewritten", to_file),
                              ("ready (incl. Cassandra/MongoDB)", to_ready)):
            print(f"{label:32s} n={len(values)} p50={statistics.median(values) * 1000:.0f}ms "
                  f"p95={percentile(values, 0.95) * 1000:.0f}ms max={max(values) * 1000:.0f}ms")
    finally:
        if operator:
            operator.stop()
        plane.stop()
        for service in (mongo, cassandra):
            service.stop(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-operator-") as tmp:
        run(args.changes, Path(tmp))


if __name__ == "__main__":
    main()
