"""The job as its own process, killed with SIGKILL three times at random moments: the numbers stay exact.

Also issue 11's acceptance scan: after 10,000 records, none of their plaintext emails, phones, cells, street
addresses, full names, dates of birth or national ids is in Cassandra, MongoDB, any topic but the raw input
(the dead letters and Kafka's own topics), the checkpoint, Spark's scratch space, the job's logs or the logs of
Kafka, Cassandra and FerretDB.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pymongo import MongoClient

from userpipeline.jobs.producer.synthetic import SyntheticSource

from stream.streamkit import (
    assert_dead_letters, assert_exact, assert_health, cassandra_profiles, cassandra_text, create_topics, files_text,
    isolated, leaked, mongo_text, personal_values, publish, topics_text, unique, wait_until, write_spec,
)

pytestmark = pytest.mark.slow

# Enough for six batches: three kills at different moments, then at least one batch after them; and the
# acceptance scan's 10,000 records.
RECORDS = 10_000


class JobProcess:
    def __init__(self, spec: Path, checkpoint: Path, env: dict[str, str], logs: Path):
        self.cmd = [sys.executable, "-m", "userpipeline.jobs.stream", "--spec", str(spec), "--checkpoint", str(checkpoint),
                    "--master", "local[2]"]
        self.env, self.logs = env, logs
        self.runs = 0
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.runs += 1
        with open(self.logs / f"run{self.runs}.log", "wb") as out:
            self.proc = subprocess.Popen(self.cmd, env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)

    def kill(self) -> None:
        """SIGKILL to the whole process group (Python driver and its JVM), like a pod being killed."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(30)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self) -> str:
        return (self.logs / f"run{self.runs}.log").read_text(errors="replace")[-3000:]


def service_logs(home: Path) -> list[Path]:
    """Every log file of the test services (their data folders hold data, not logs: Kafka's segments are `*.log`)."""
    return [p for p in home.rglob("*") if p.is_file() and "data" not in p.relative_to(home).parts
            and (p.suffix == ".log" or "logs" in p.relative_to(home).parts)]


def test_sigkill_three_times_then_exact_and_no_plaintext(endpoints, cassandra, services_home, tmp_path):
    seed = random.randrange(1 << 30)
    print(f"kill-timing seed {seed}")
    rng = random.Random(seed)
    name = unique("crash")
    topic = name.replace("_", "-")
    spec_path = tmp_path / "pipeline.yaml"
    spec = write_spec(spec_path, topic, max_records=1600)
    ep = isolated(endpoints, name)
    create_topics(ep.kafka_bootstrap, spec)
    source = SyntheticSource(seed=9, broken_ratio=0.05, minor_ratio=0.05, resend_ratio=0.05)
    sent = publish(ep.kafka_bootstrap, topic, [(r.payload, r.expected, r.age) for r in source.records(0, RECORDS)])

    checkpoint, logs, scratch = tmp_path / "checkpoint", tmp_path / "logs", tmp_path / "spark-local"
    logs.mkdir()
    scratch.mkdir()
    env = {**os.environ, **ep.to_env(), "SPARK_LOCAL_DIRS": str(scratch), "USERPIPELINE_LOG_FORMAT": "json"}
    job = JobProcess(spec_path, checkpoint, env, logs)
    mongo = MongoClient(ep.mongo_uri.get_secret_value(), tz_aware=True)
    db = mongo[name]

    def processed() -> int:
        return (db["pipeline_health"].find_one({"_id": "stream"}) or {}).get("processed", 0)

    def journal_open() -> bool:
        return db["batch_journal"].count_documents({"done": False}) > 0

    resumed_runs = []
    try:
        # Three random moments of three kinds: during start-up or the first batch; just after a batch
        # journaled its deltas (before or while writing them); some seconds after a batch finished.
        for moment in ("early", "journaled", "later"):
            before = processed()
            job.start()
            if moment == "early":
                time.sleep(rng.uniform(5.0, 25.0))  # the random kill moment itself, not a wait for a condition
            else:
                wait_until(lambda: processed() > before or not job.alive(), 300, "a batch of the restarted job")
                if moment == "journaled":
                    wait_until(lambda: journal_open() or not job.alive(), 120, "the next batch's journal", interval=0.05)
                    time.sleep(rng.uniform(0.0, 0.5))
                else:
                    time.sleep(rng.uniform(0.0, 6.0))
            assert job.alive(), job.log_tail()
            job.kill()
            if journal_open():
                resumed_runs.append(job.runs + 1)
            print(f"killed run {job.runs} ({moment}) at {processed()} processed records, open journal: {journal_open()}")
        job.start()
        wait_until(lambda: processed() >= len(sent) or not job.alive(), 600, "every record after the restarts")
        assert job.alive(), job.log_tail()
        job.proc.send_signal(signal.SIGTERM)
        assert job.proc.wait(120) == 0, job.log_tail()

        session = cassandra.session()
        try:
            profiles = cassandra_profiles(session, name)
        finally:
            session.cluster.shutdown()
        assert_exact(profiles, db, sent)
        assert_health(db, sent)
        letters = assert_dead_letters(ep.kafka_bootstrap, topic, sent)
        print(f"dead letters: {letters} messages (at least once)")

        personal = personal_values(sent)
        assert all(len(values) > 500 for values in personal.values()), {k: len(v) for k, v in personal.items()}
        files = files_text(checkpoint, logs, scratch)
        logged = service_logs(services_home)
        places = {"Cassandra": cassandra_text(profiles), "MongoDB": mongo_text(db),
                  "topics but the raw one": topics_text(ep.kafka_bootstrap, exclude={topic}),
                  "checkpoint, job logs, Spark scratch": files, "service logs": files_text(*logged)}
        began, every = time.monotonic(), set().union(*personal.values())
        found = {(where, kind): sorted(hits & values)[:3] for where, text in places.items() if (hits := leaked(text, every))
                 for kind, values in personal.items() if hits & values}
        assert found == {}, f"plaintext personal data: {found}"
        assert "stream.batch" in files and f"{topic}.dlq" in places["topics but the raw one"]
        assert len(logged) >= 3 and "cassandra" in places["service logs"].lower()
        print(f"scanned {len(every)} personal values in {time.monotonic() - began:.1f}s: "
              + ", ".join(f"{where} {len(text) // 1024} KiB" for where, text in places.items()))
        for run in resumed_runs:  # a batch killed after journaling was finished from its journal
            assert "stream.batch_resumed" in (logs / f"run{run}.log").read_text()
        assert sorted(p.name for p in checkpoint.iterdir() if not p.name.startswith(".")) == [
            "commits", "metadata", "offsets", "sources"]  # offsets only: no state store
    finally:
        if job.alive():
            job.kill()
        mongo.close()
