"""`userpipeline up -f <UserPipeline>` runs the whole pipeline locally, and edits of the file apply live."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest
import yaml

from harness.polling import wait_for
from userpipeline.operator.local.platform import LocalPlatform
from userpipeline.operator.local.services.ports import free_port

pytestmark = pytest.mark.timeout(1200)


def cli(state_dir: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "userpipeline.operator.cli", *args, "--state-dir", str(state_dir)],
                          capture_output=True, text=True, timeout=900, env={**os.environ, "COLUMNS": "200"})


def write_spec(path: Path, **spec) -> None:
    path.write_text(yaml.safe_dump({"apiVersion": "userpipeline.io/v1alpha1", "kind": "UserPipeline",
                                    "metadata": {"name": "e2e"}, "spec": spec}))


SPEC = {"source": {"type": "synthetic", "seed": 7, "brokenRatio": 0.05}, "producer": {"ratePerSecond": 200},
        "topic": {"name": "users.raw", "partitions": 2, "retention": "7d"},
        "retention": {"profiles": "30d", "aggregates": "90d", "deadLetter": "7d"},
        "stream": {"triggerInterval": "2s"}}


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    state = tmp_path_factory.mktemp("local-state")
    spec_file = state.parent / f"{state.name}-pipeline.yaml"
    write_spec(spec_file, **SPEC)
    ports = {"kafka-port": free_port(), "kafka-controller-port": free_port(), "cassandra-port": free_port(),
             "cassandra-storage-port": free_port(), "ferretdb-port": free_port()}
    args = [f"--{k}={v}" for k, v in ports.items()]
    args += [f"--port=dashboard.http={free_port()}", f"--port=producer.metrics={free_port()}"]
    result = cli(state, "up", "-f", str(spec_file), *args)
    try:
        assert result.returncode == 0, result.stdout + result.stderr
        yield LocalPlatform(state), spec_file, result
    finally:
        cli(state, "down")  # also when `up` failed half-way: nothing may outlive the tests


def test_up_starts_every_process_and_prints_where_things_are(pipeline):
    platform, _, result = pipeline
    names = [s.name for s in platform.status() if s.healthy]
    assert names == ["kafka", "cassandra", "ferretdb", "producer", "stream", "reconciler", "dashboard", "supervisor"]
    assert "dashboard: " in result.stdout and "edits apply live" in result.stdout


def test_records_flow_to_the_stores_and_status_shows_progress(pipeline):
    platform, _, _ = pipeline
    progress = wait_for(lambda: (p := platform.progress()).get("processed", 0) > 0 and p, 300, "a processed batch")
    assert progress["acked"] > 0
    session = platform.cassandra.session()
    try:
        assert session.execute("SELECT count(*) FROM userpipeline.profiles").one()[0] > 0
    finally:
        session.cluster.shutdown()
    status = cli(platform.state_dir, "status")
    assert status.returncode == 0 and "processed" in status.stdout, status.stdout + status.stderr


def test_rotate_key_restarts_the_stream_and_new_rows_carry_the_new_key_id(pipeline):
    """`userpipeline rotate-key` on the running pipeline (issue 11): the old key is kept as a retired key, the stream
    restarts with the new ring, rows written from then on carry the new key id, earlier rows keep theirs."""
    platform, _, _ = pipeline
    old_id = platform.endpoints().hmac_key_id
    session = platform.cassandra.session()

    def key_ids() -> set[str]:
        return {row.hmac_key_id for row in session.execute("SELECT hmac_key_id FROM userpipeline.profiles")}

    try:
        wait_for(lambda: key_ids() == {old_id}, 300, "rows under the first key")
        result = cli(platform.state_dir, "rotate-key")
        assert result.returncode == 0 and "the stream runs with the new key" in result.stdout, result.stdout + result.stderr
        new_id = platform.endpoints().hmac_key_id
        assert new_id != old_id and set(platform.retired_keys()) == {old_id}
        assert platform.hmac_key() not in result.stdout and platform.retired_keys()[old_id] not in result.stdout
        wait_for(lambda: key_ids() == {old_id, new_id}, 300, "rows under the new key")
    finally:
        session.cluster.shutdown()
    assert cli(platform.state_dir, "status").returncode == 0


def test_dashboard_is_served(pipeline):
    platform, _, _ = pipeline
    dashboard = next(app for app in platform.apps() if app.name == "dashboard")
    assert httpx.get(f"http://127.0.0.1:{dashboard.ports['http']}/healthz", timeout=5).status_code == 200


def test_pausing_in_the_file_stops_the_producer_within_seconds(pipeline):
    platform, spec_file, _ = pipeline
    producer = next(app for app in platform.apps() if app.name == "producer")
    write_spec(spec_file, **{**SPEC, "producer": {"ratePerSecond": 200, "paused": True}})
    edited = time.monotonic()

    def settled():
        before = producer.progress().get("acked")
        time.sleep(1.5)
        return before == producer.progress().get("acked") and time.monotonic() - edited

    assert wait_for(settled, 15, "the producer to stop after pausing") < 10
    write_spec(spec_file, **SPEC)
    start = producer.progress().get("acked", 0)
    wait_for(lambda: producer.progress().get("acked", 0) > start, 15, "the producer to resume")


def test_retention_edits_reach_kafka_cassandra_and_mongodb(pipeline):
    platform, spec_file, _ = pipeline
    reconciler = next(app for app in platform.apps() if app.name == "reconciler")
    wait_for(lambda: reconciler.conditions().get("ready"), 120, "the reconciler to apply the first spec")
    write_spec(spec_file, **{**SPEC, "topic": {**SPEC["topic"], "retention": "2d"},
                             "retention": {"profiles": "10d", "aggregates": "20d", "deadLetter": "1d"}})

    def applied():
        status = reconciler.conditions()
        return status.get("ready") and status["observedSpec"]["retention"]["profiles"] == "10d"

    wait_for(applied, 20, "the reconciler to apply the edited retention")
    session = platform.cassandra.session()
    try:
        ttl = session.execute("SELECT default_time_to_live FROM system_schema.tables "
                              "WHERE keyspace_name = 'userpipeline' AND table_name = 'profiles'").one()[0]
    finally:
        session.cluster.shutdown()
    assert ttl == 10 * 86400
    with platform.ferretdb.client() as client:
        assert client.userpipeline.settings.find_one({"_id": "retention"})["aggregatesSeconds"] == 20 * 86400
    from confluent_kafka.admin import AdminClient, ConfigResource, ResourceType

    admin = AdminClient({"bootstrap.servers": platform.kafka.bootstrap})
    for topic, ms in (("users.raw", 2 * 86400000), ("users.raw.dlq", 86400000)):
        resource = ConfigResource(ResourceType.TOPIC, topic)
        assert admin.describe_configs([resource])[resource].result(timeout=10)["retention.ms"].value == str(ms)
    status = json.loads(reconciler.status_file.read_text())
    assert set(status["conditions"]) == {"TopicRetention", "CassandraTTL", "MongoRetention"}


FIGURE_JS = """
const card = document.getElementById(arguments[0]);  // null until Dash has rendered the layout
const gd = card && card.querySelector('.js-plotly-plot');
if (!gd || !gd.data || !gd.data.length) return null;
return {x: Array.from(gd.data[0].x || []), customdata: Array.from(gd.data[0].customdata || [])};
"""


def test_dashboard_shows_what_the_real_pipeline_stored(pipeline, browser):
    """Paused and drained, the stores agree exactly and the page shows the same numbers."""
    platform, spec_file, _ = pipeline
    write_spec(spec_file, **{**SPEC, "producer": {"ratePerSecond": 200, "paused": True}})
    producer = next(app for app in platform.apps() if app.name == "producer")
    session = platform.cassandra.session()

    def drained():
        acked = producer.progress().get("acked")
        health = platform.progress()
        with platform.ferretdb.client() as client:
            total = (client.userpipeline.aggregates.find_one({"_id": "total:all"}) or {}).get("count")
        stored = session.execute("SELECT count(*) FROM userpipeline.profiles").one()[0]
        time.sleep(3)  # two reads a trigger interval apart: nothing moved in between
        settled = acked == producer.progress().get("acked") and health == platform.progress()
        return settled and health.get("lagRecords") == 0 and total == stored and total

    try:
        total = wait_for(drained, 180, "the pipeline to drain with aggregates equal to Cassandra")
        with platform.ferretdb.client() as client:
            per_nat = {d["key"]: d["count"] for d in client.userpipeline.aggregates.find({"dimension": "nationality"})
                       if d["count"] > 0}
        recount = {}
        for row in session.execute("SELECT nat FROM userpipeline.profiles"):
            recount[row.nat] = recount.get(row.nat, 0) + 1
    finally:
        session.cluster.shutdown()
    assert per_nat == recount

    dashboard = next(app for app in platform.apps() if app.name == "dashboard")
    browser.get(dashboard.url)
    bars = wait_for(lambda: browser.execute_script(FIGURE_JS, "nationality-bar"), 30, "the nationality chart")
    shown = dict(zip(bars["customdata"], bars["x"]))
    assert sum(shown.values()) == total
    assert all(shown[nat] == count for nat, count in per_nat.items() if nat in shown)
    wait_for(lambda: f"{total:,}" in browser.find_element("id", "headline").text, 30, f"the headline total {total:,}")


def test_status_marks_a_stalled_stream_and_exits_1(pipeline):
    """The stream's own health document drives the verdict (jobs/stream/health.py): a batch failing for
    minutes, or no batch while records wait, is `stalled` with its reason, and `status` exits 1."""
    platform, spec_file, _ = pipeline
    write_spec(spec_file, **{**SPEC, "producer": {"ratePerSecond": 200, "paused": True}})

    def quiet():  # no batch can come and rewrite the health document meanwhile
        before = platform.health_document()
        time.sleep(5)
        return before == platform.health_document() and before.get("lagRecords") == 0

    wait_for(quiet, 180, "the paused pipeline to drain")
    wait_for(lambda: cli(platform.state_dir, "status").returncode == 0, 120, "a healthy status to start from")
    now = datetime.now(timezone.utc)
    stalls = {
        "failing": ({"failing": {"since": now - timedelta(minutes=10), "lastAt": now, "batchId": 99,
                                 "error": "InvalidRequest: Batch too large"}}, "batch 99 keeps failing"),
        "no batch": ({"lastBatchAt": now - timedelta(minutes=10), "lagRecords": 500}, "500 records wait"),
    }
    with platform.ferretdb.client() as client:
        health = client.userpipeline.pipeline_health
        original = health.find_one({"_id": "stream"})
        try:
            for fields, reason in stalls.values():
                health.update_one({"_id": "stream"}, {"$set": fields})
                status = cli(platform.state_dir, "status")
                stderr = " ".join(status.stderr.split())
                assert status.returncode == 1 and "stream stalled:" in stderr and reason in stderr, status.stderr
                row = next(line for line in status.stdout.splitlines() if " stream " in line)
                assert "stalled" in row, status.stdout
                health.replace_one({"_id": "stream"}, original)
        finally:
            health.replace_one({"_id": "stream"}, original)
    status = cli(platform.state_dir, "status")
    assert status.returncode == 0, status.stdout + status.stderr
