"""Streaming job throughput on this machine: Kafka -> Spark -> Cassandra + MongoDB, against a plain Kafka consume.

    .venv/bin/python tests/bench/bench_stream.py [--records 50000] [--batch 20000] [--use-env]

Without --use-env it starts throwaway Kafka, Cassandra and FerretDB with the harness classes
(userpipeline.operator.local.services); with it, the services of the USERPIPELINE_* environment.
N synthetic users (5 % minors, 1 % broken) are published first (not timed). Then:
  1. baseline: a confluent-kafka consumer reads the N records from the beginning (records/s);
  2. the streaming job in this process (SparkSession started before the clock): time from query start
     until `pipeline_health.processed` reaches N, i.e. every record is in Cassandra/MongoDB/the dead-letter
     topic. Reported end to end (including the first batch's warm-up: Python workers, JIT, connections)
     and in steady state (after the first batch).
Prints records/s and the ratio to the baseline, then where the stream's time went: the CPU-seconds of the
driver's Python process, of Spark's JVM with its Python workers and of the services; the job's per-step
seconds (summed over the `stream.batch` log lines) and Spark's query progress (`durationMs` per phase,
summed over the batches that had records). Not a test: numbers only. On a shared 2-core machine the
numbers swing with the load; the load average is printed with them.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psutil
import structlog
import yaml
from confluent_kafka import Consumer, TopicPartition
from pydantic import SecretStr
from pymongo import MongoClient

from userpipeline.jobs.endpoints import Endpoints
from userpipeline.jobs.logs import configure_logging
from userpipeline.jobs.producer.publisher import Publisher, ensure_topics, producer_config
from userpipeline.jobs.producer.sanitize import to_message
from userpipeline.jobs.producer.synthetic import SyntheticSource
from userpipeline.jobs.stream import job
from userpipeline.operator.local.artifacts import load_artifacts
from userpipeline.operator.local.services import CassandraService, FerretDBService, KafkaService
from userpipeline.operator.local.services.ports import free_port
from userpipeline.operator.spec.model import UserPipelineSpec, load_userpipeline


def write_spec(path: Path, topic: str, batch: int) -> UserPipelineSpec:
    spec = {"topic": {"name": topic, "partitions": 3, "retention": "1d"},
            "stream": {"triggerInterval": "1s", "maxRecordsPerBatch": batch}}
    path.write_text(yaml.safe_dump({"apiVersion": "userpipeline.io/v1alpha1", "kind": "UserPipeline",
                                    "metadata": {"name": "bench"}, "spec": spec}))
    return load_userpipeline(path).spec


def publish(bootstrap: str, topic: str, records: int) -> None:
    source = SyntheticSource(seed=1, minor_ratio=0.05, broken_ratio=0.01)
    publisher = Publisher(producer_config(bootstrap), topic)
    for record in source.records(0, records):
        publisher.send(record.index, to_message(record.payload))
        publisher.poll(0)
    publisher.flush(300)


def bench_consume(bootstrap: str, topic: str, records: int) -> float:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-{uuid.uuid4().hex[:8]}",
                         "enable.auto.commit": False})
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
    started, seen = time.perf_counter(), 0
    while seen < records:
        seen += sum(1 for msg in consumer.consume(1000, timeout=1) if msg.error() is None)
    rate = records / (time.perf_counter() - started)
    consumer.close()
    return rate


BATCH_LINES: list[dict] = []
DRIVER_CALLS: dict[str, float] = {}


def time_driver_calls() -> None:
    """Seconds of a few driver calls inside the job's `classify` step (the job's own log has the steps only)."""
    from pyspark.sql.classic.dataframe import DataFrame

    from userpipeline.jobs.stream.sinks.mongo import AggregateStore

    targets = [(job.transform, "classify", "build the classify plan (driver, py4j)"),
               (DataFrame, "collect", "Spark collect (Kafka read, parse, checks, HMAC UDF, cache, to driver)"),
               (AggregateStore, "find_journal", "MongoDB: find journal"),
               (AggregateStore, "mark_in_flight", "MongoDB: mark in flight"),
               (job.BatchProcessor, "_erased", "MongoDB: erasure ledger"),
               (job.deltas, "latest_per_user", "latest per user"),
               (job.LagProbe, "lag", "health: Kafka lag probe")]
    for owner, name, label in targets:
        original = getattr(owner, name, None)
        if original is None:
            continue

        def timed(*args, _original=original, _label=label, **kwargs):
            started = time.perf_counter()
            try:
                return _original(*args, **kwargs)
            finally:
                DRIVER_CALLS[_label] = DRIVER_CALLS.get(_label, 0.0) + time.perf_counter() - started

        setattr(owner, name, timed)


def capture_batch_lines() -> None:
    """Keep each `stream.batch` event (per-step seconds) as well as logging it."""
    def keep(_logger, _name, event: dict) -> dict:
        if event.get("event") == "stream.batch":
            BATCH_LINES.append(dict(event))
        return event

    processors = list(structlog.get_config()["processors"])
    structlog.configure(processors=[*processors[:-1], keep, processors[-1]])


def cpu_seconds(process: psutil.Process) -> float:
    """User + system CPU of a process and its live descendants (and of the children they waited for)."""
    total = 0.0
    for proc in [process, *process.children(recursive=True)]:
        try:
            times = proc.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system + times.children_user + times.children_system
    return total


def bench_stream(endpoints: Endpoints, spec: UserPipelineSpec, records: int, workdir: Path,
                 services: list) -> tuple[float, float, dict]:
    spark = job.build_session("local[2]", [str(p) for p in load_artifacts().spark_jars], local_dir=str(workdir / "spark"))
    health = MongoClient(endpoints.mongo_uri.get_secret_value())[endpoints.mongo_database]["pipeline_health"]
    settings = job.StreamSettings.from_spec(spec, workdir / "checkpoint")
    jvm = psutil.Process(spark.sparkContext._gateway.proc.pid)  # spark-submit's JVM; the Python workers are its children
    service_procs = {s.name: psutil.Process(s.pid()) for s in services if s.pid() is not None}
    driver = psutil.Process()
    cpu_before = {"driver Python": sum(driver.cpu_times()[:2]), "Spark JVM + Python workers": cpu_seconds(jvm),
                  **{name: cpu_seconds(p) for name, p in service_procs.items()}}
    started = time.perf_counter()
    query, processor = job.start(spark, settings, endpoints)
    first_batch: tuple[float, int] | None = None
    try:
        while True:
            doc = health.find_one({"_id": "stream"}) or {}
            processed = doc.get("processed", 0)
            if processed and first_batch is None:
                first_batch = (time.perf_counter(), processed)
            if processed >= records:
                break
            if query.exception() is not None:
                raise RuntimeError(f"the query failed: {query.exception()}")
            time.sleep(0.2)
        finished = time.perf_counter()
        cpu = {"driver Python": sum(driver.cpu_times()[:2]) - cpu_before["driver Python"],
               "Spark JVM + Python workers": cpu_seconds(jvm) - cpu_before["Spark JVM + Python workers"],
               **{name: cpu_seconds(p) - cpu_before[name] for name, p in service_procs.items()}}
        progress = [p for p in query.recentProgress if p.get("numInputRows")]
        spark_jobs = len(spark.sparkContext.statusTracker().getJobIdsForGroup(str(query.runId)))
    finally:
        query.stop()
        processor.close()
        spark.stop()
    assert first_batch is not None
    steady = (records - first_batch[1]) / (finished - first_batch[0]) if records > first_batch[1] else float("nan")
    phases: dict[str, float] = {}
    for p in progress:
        for phase, ms in p["durationMs"].items():
            phases[phase] = phases.get(phase, 0.0) + ms / 1000
    return records / (finished - started), steady, {"cpu": cpu, "phases": phases, "batches": len(progress), "spark_jobs": spark_jobs,
                                                    "seconds": finished - started}


def print_breakdown(details: dict) -> None:
    print(f"\nwall {details['seconds']:.1f} s; CPU-seconds during the stream run:")
    for name, seconds in details["cpu"].items():
        print(f"  {name:38}{seconds:10.1f}")
    steps: dict[str, float] = {}
    for line in BATCH_LINES:
        for step, seconds in (line.get("steps") or {}).items():
            steps[step] = steps.get(step, 0.0) + seconds
    total = sum(line.get("seconds", 0) for line in BATCH_LINES)
    print(f"job steps, summed over {len(BATCH_LINES)} batches (batch seconds {total:.1f}; per batch: "
          + ", ".join(f"{line.get('records')} rec {line.get('seconds')} s" for line in BATCH_LINES) + "):")
    for step, seconds in steps.items():
        print(f"  {step:38}{seconds:10.1f}")
    print("inside them, driver calls (s):")
    for label, seconds in DRIVER_CALLS.items():
        print(f"  {label:70}{seconds:8.1f}")
    print(f"Spark jobs of the query: {details['spark_jobs']}; query progress, durationMs summed over "
          f"{details['batches']} batches with records (s):")
    for phase, seconds in sorted(details["phases"].items(), key=lambda item: -item[1]):
        print(f"  {phase:38}{seconds:10.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=20_000, help="spec.stream.maxRecordsPerBatch")
    parser.add_argument("--use-env", action="store_true", help="use the services of the USERPIPELINE_* environment")
    args = parser.parse_args()
    configure_logging(json=True)
    capture_batch_lines()
    time_driver_calls()
    os.environ.setdefault("JAVA_HOME", str(load_artifacts().java_home))
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)

    with tempfile.TemporaryDirectory(prefix="bench-stream-") as tmp:
        workdir = Path(tmp)
        services = []
        name = f"bench_{uuid.uuid4().hex[:8]}"
        if args.use_env:
            endpoints = Endpoints.from_env()
        else:
            services = [KafkaService(workdir / "kafka", {"broker": free_port(), "controller": free_port()}),
                        CassandraService(workdir / "cassandra", {"cql": free_port(), "storage": free_port()}),
                        FerretDBService(workdir / "ferretdb", {"mongo": free_port()})]
            for service in services:
                service.start()
            kafka, cassandra, mongo = services
            endpoints = Endpoints(kafka_bootstrap=kafka.bootstrap, cassandra_hosts=cassandra.contact,
                                  mongo_uri=SecretStr(mongo.uri), hmac_key=SecretStr("bench-key"), hmac_key_id="bench")
        endpoints = endpoints.model_copy(update={"cassandra_keyspace": name, "mongo_database": name})
        try:
            spec = write_spec(workdir / "bench.yaml", name.replace("_", "-"), args.batch)
            ensure_topics(endpoints.kafka_bootstrap, spec)
            publish(endpoints.kafka_bootstrap, spec.topic.name, args.records)
            baseline = bench_consume(endpoints.kafka_bootstrap, spec.topic.name, args.records)
            end_to_end, steady, details = bench_stream(endpoints, spec, args.records, workdir, services)
        finally:
            for service in reversed(services):
                service.stop(timeout=30)

    print(f"records: {args.records}, maxRecordsPerBatch: {args.batch}, load average: {os.getloadavg()[0]:.1f}")
    print(f"{'':40}{'records/s':>12}{'vs consume':>12}")
    for label, rate in (("plain Kafka consume (confluent-kafka)", baseline),
                        ("stream end to end (incl. warm-up)", end_to_end),
                        ("stream steady state (after batch 1)", steady)):
        print(f"{label:40}{rate:12.0f}{rate / baseline:12.3f}")
    print_breakdown(details)


if __name__ == "__main__":
    main()
