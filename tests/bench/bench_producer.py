"""Producer throughput on this machine: our producer versus kafka-producer-perf-test on the same Kafka.

    .venv/bin/python tests/bench/bench_producer.py [--records 50000] [--bootstrap HOST:PORT]

Without --bootstrap it starts a throwaway Kafka with the harness class (userpipeline.operator.local.services).
Measures, with the same producer settings (acks=all, idempotence, lz4, linger.ms=20, 3 partitions):
  1. generate + sanitize only (no Kafka, one thread): what one process can generate;
  2. the producer runner end to end (synthetic source, spec rate 100000/s, its maximum), acknowledged records/s,
     with the generation in the Kafka client's thread (--workers 0) and in one worker process (the default);
  3. org.apache.kafka.tools.ProducerPerformance (kafka-producer-perf-test) with the average record size of 2.
Prints records/s of wall time and per CPU-second (process CPU time, all threads, plus the generator workers';
for the JVM the child's rusage), since on a shared 2-core machine wall-clock numbers swing with the load.
Not a test: numbers only.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import yaml

from userpipeline.jobs.endpoints import Endpoints
from userpipeline.jobs.logs import configure_logging
from userpipeline.jobs.producer.publisher import ensure_topics
from userpipeline.jobs.producer.runner import Options, Runner
from userpipeline.jobs.producer.sanitize import to_message
from userpipeline.jobs.producer.synthetic import SyntheticSource
from userpipeline.operator.local.artifacts import load_artifacts
from userpipeline.operator.local.services import KafkaService
from userpipeline.operator.local.services.ports import free_port
from userpipeline.operator.spec.model import load_userpipeline


def write_spec(path: Path, topic: str) -> Path:
    spec = {"source": {"type": "synthetic", "seed": 1, "minorRatio": 0.05, "brokenRatio": 0.0},
            "producer": {"ratePerSecond": 100000}, "topic": {"name": topic, "partitions": 3, "retention": "1d"}}
    path.write_text(yaml.safe_dump({"apiVersion": "userpipeline.io/v1alpha1", "kind": "UserPipeline",
                                    "metadata": {"name": "bench"}, "spec": spec}))
    return path


Rates = tuple[float, float]  # records per wall second, records per CPU second


def measured(records: int, started: tuple[float, float]) -> Rates:
    wall, cpu = time.perf_counter() - started[0], time.process_time() - started[1]
    return records / wall, records / cpu


def bench_generator(records: int) -> tuple[Rates, float]:
    source = SyntheticSource(seed=1, minor_ratio=0.05)
    started, total = (time.perf_counter(), time.process_time()), 0
    for i in range(records):
        total += len(to_message(source.record(i, lean=True).payload).value)  # what the producer's feeds do
    return measured(records, started), total / records


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)  # reaped children only: the workers, not the broker
    return usage.ru_utime + usage.ru_stime


def bench_runner(bootstrap: str, records: int, workdir: Path, workers: int) -> Rates:
    spec = write_spec(workdir / "bench.yaml", f"bench-{uuid.uuid4().hex[:8]}")
    runner = Runner(Options(spec_path=spec, count=records, report_every=5.0, workers=workers), Endpoints(kafka_bootstrap=bootstrap))
    ensure_topics(bootstrap, runner.spec)  # topic creation is not part of the measurement
    workers_before, started = children_cpu(), (time.perf_counter(), time.process_time())
    assert runner.run() == 0, "the producer reported failed deliveries"
    wall, _ = measured(records, started)
    cpu = time.process_time() - started[1] + children_cpu() - workers_before
    return wall, records / cpu


def bench_perf_test(bootstrap: str, records: int, record_size: int, workdir: Path) -> Rates:
    topic = f"bench-perf-{uuid.uuid4().hex[:8]}"
    ensure_topics(bootstrap, load_userpipeline(write_spec(workdir / "perf.yaml", topic)).spec)
    artifacts = load_artifacts()
    command = [
        str(artifacts.java), "-Xmx512m", "-cp", f"{artifacts.kafka_lib}/*", "org.apache.kafka.tools.ProducerPerformance",
        "--topic", topic, "--num-records", str(records), "--record-size", str(record_size), "--throughput", "-1",
        "--producer-props", f"bootstrap.servers={bootstrap}", "acks=all", "enable.idempotence=true",
        "compression.type=lz4", "linger.ms=20", "batch.size=1000000",
    ]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)  # includes JVM start-up
    summary = [line for line in output.splitlines() if "records sent" in line][-1]
    return float(re.search(r"([\d.]+) records/sec", summary).group(1)), records / cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=50_000)
    parser.add_argument("--bootstrap", help="use this Kafka instead of starting one")
    args = parser.parse_args()
    configure_logging(json=True)

    with tempfile.TemporaryDirectory(prefix="bench-producer-") as tmp:
        workdir = Path(tmp)
        kafka = None
        if args.bootstrap is None:
            kafka = KafkaService(workdir / "kafka", {"broker": free_port(), "controller": free_port()})
            kafka.start()
        bootstrap = args.bootstrap or kafka.bootstrap
        try:
            generated, size = bench_generator(min(args.records, 20_000))
            in_thread = bench_runner(bootstrap, args.records, workdir, workers=0)
            produced = bench_runner(bootstrap, args.records, workdir, workers=1)
            baseline = bench_perf_test(bootstrap, args.records, round(size), workdir)
        finally:
            if kafka is not None:
                kafka.stop(timeout=30)

    print(f"records: {args.records}, average record size: {size:.0f} bytes, load average: {os.getloadavg()[0]:.1f}")
    print(f"{'':32}{'records/s':>12}{'records/CPU-s':>15}")
    for label, (wall, cpu) in (("generate + sanitize only", generated), ("producer, --workers 0 (acked)", in_thread),
                               ("producer, --workers 1 (acked)", produced), ("kafka-producer-perf-test", baseline)):
        print(f"{label:32}{wall:12.0f}{cpu:15.0f}")
    print(f"{'ratio producer (1) / perf-test':32}{produced[0] / baseline[0]:12.2f}{produced[1] / baseline[1]:15.2f}")


if __name__ == "__main__":
    main()
