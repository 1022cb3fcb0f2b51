"""Benchmark (not a test): dashboard refresh-callback time with aggregates of 1,000 vs 1,000,000 profiles.

The aggregate documents are computed from a synthetic population (the dashboard never reads
profiles), written to a real FerretDB, and the refresh callback's work (take the latest read of the
two collections, build the view, serialise it as Dash does) runs N times for each size. The read itself
runs in the background once per refresh interval (`store.SnapshotPoller`); its time is reported too
("read"), since it bounds how old the data shown can be. Two populations:
- `fixed domains`: email domains from a fixed list (like the synthetic source; randomuser uses one),
  so the aggregate documents are as many for 1M profiles as for 1k;
- `long tail`: 0.5 % of users have a personal domain, so email-domain documents grow with the data.
Prints p50/p95 per size and the 1M/1k ratio.

    .venv/bin/python tests/bench/bench_dashboard.py [--runs 200] [--mongo-uri mongodb://...]
Without --mongo-uri it starts a private FerretDB from the bootstrap's binary.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import plotly.io
from pymongo import MongoClient

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "dashboard"))
from dashboard_data import aggregate_documents, health_document, population, write  # noqa: E402
from dashboard_support import wait_for  # noqa: E402

from userpipeline.dashboard.app import poller_for, view_of, view_outputs  # noqa: E402
from userpipeline.dashboard.settings import DashboardSettings  # noqa: E402
from userpipeline.dashboard.store import AggregateStore  # noqa: E402
from userpipeline.operator.local.artifacts import load_artifacts  # noqa: E402
from userpipeline.operator.local.services.ports import free_port  # noqa: E402

SIZES = (1_000, 1_000_000)
SCENARIOS = {"fixed domains": 0.0, "long tail": 0.005}


def start_ferretdb(tmp: Path) -> tuple[str, subprocess.Popen[bytes]]:
    port = free_port()
    proc = subprocess.Popen([str(load_artifacts().ferretdb), "--listen-addr", f"127.0.0.1:{port}", "--data-dir", str(tmp / "data")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    uri = f"mongodb://127.0.0.1:{port}/"
    with MongoClient(uri, serverSelectionTimeoutMS=5000) as client:
        wait_for(lambda: client.admin.command("ping"), 30, "FerretDB")
    return uri, proc


def time_callback(uri: str, database: str, runs: int) -> tuple[list[float], list[float]]:
    """(callback ms, background read ms) samples."""
    settings = DashboardSettings(mongo_uri=uri, mongo_database=database, mongo_timeout_ms=10_000)
    store = AggregateStore(uri, database, settings.mongo_timeout_ms)
    poller = poller_for(store, settings)
    reads = []
    for _ in range(max(5, runs // 10)):  # what the background thread does once per interval
        started = time.perf_counter()
        poller.read()
        reads.append((time.perf_counter() - started) * 1000)
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        outputs = view_outputs(view_of(poller.latest(), settings))
        plotly.io.json.to_json_plotly(list(outputs))  # what Dash does with the callback's return value
        samples.append((time.perf_counter() - started) * 1000)
    poller.close()
    store.close()
    return samples, reads


def percentiles(samples: list[float]) -> tuple[float, float]:
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    return cuts[49], cuts[94]


def run(client: MongoClient, uri: str, name: str, share: float, runs: int) -> None:
    results = {}
    for profiles in SIZES:
        docs = aggregate_documents(population(profiles, personal_domains=share))
        db = client[f"bench_dashboard_{profiles}"]
        client.drop_database(db.name)
        write(db, docs, health_document(profiles))
        samples, reads = time_callback(uri, db.name, runs)
        results[profiles] = percentiles(samples)
        client.drop_database(db.name)
        print(f"{name:>13}: {profiles:>9,} profiles -> {len(docs):5,} aggregate docs; callback over {runs} runs: "
              f"p50 {results[profiles][0]:6.1f} ms, p95 {results[profiles][1]:6.1f} ms; "
              f"background read p50 {statistics.median(reads):6.1f} ms", flush=True)
    (small50, small95), (large50, large95) = results[SIZES[0]], results[SIZES[1]]
    print(f"{name:>13}: ratio 1M/1k p50 {large50 / small50:.2f}x, p95 {large95 / small95:.2f}x", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--mongo-uri", default=None, help="an existing MongoDB/FerretDB (databases bench_dashboard_* are dropped)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        uri, proc = (args.mongo_uri, None) if args.mongo_uri else start_ferretdb(Path(tmp))
        try:
            with MongoClient(uri) as client:
                for name, share in SCENARIOS.items():
                    run(client, uri, name, share, args.runs)
        finally:
            if proc:
                proc.terminate()
                proc.wait(10)


if __name__ == "__main__":
    main()
