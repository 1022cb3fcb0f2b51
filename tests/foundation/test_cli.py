"""`userpipeline up/down/status/logs/reset` on a state directory of its own, as a user runs them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from pymongo import MongoClient

from userpipeline.operator.local.platform import LocalPlatform
from userpipeline.operator.local.services.ports import free_port

pytestmark = pytest.mark.timeout(900)


def cli(state_dir: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "userpipeline.operator.cli", *args, "--state-dir", str(state_dir)],
        capture_output=True, text=True, timeout=600, env={**os.environ, "COLUMNS": "200", **(env or {})},
    )


@pytest.fixture(scope="module")
def state_dir(tmp_path_factory):
    state = tmp_path_factory.mktemp("cli-state")
    ports = ["--kafka-port", str(free_port()), "--kafka-controller-port", str(free_port()),
             "--cassandra-port", str(free_port()), "--cassandra-storage-port", str(free_port()),
             "--ferretdb-port", str(free_port())]
    result = cli(state, "up", "--no-supervise", *ports)  # these tests restart by hand; test_supervisor.py doesn't
    assert result.returncode == 0, result.stderr + result.stdout
    yield state
    cli(state, "down")


def test_up_reports_three_healthy_services(state_dir):
    result = cli(state_dir, "status")
    assert result.returncode == 0, result.stdout + result.stderr
    for name in ("kafka", "cassandra", "ferretdb"):
        assert any(name in line and "healthy" in line for line in result.stdout.splitlines()), result.stdout


def test_up_twice_is_harmless(state_dir):
    before = {s.name: s.pid for s in LocalPlatform(state_dir).status()}
    result = cli(state_dir, "up", "--no-supervise")
    assert result.returncode == 0, result.stderr
    assert {s.name: s.pid for s in LocalPlatform(state_dir).status()} == before


def test_data_survives_down_and_up(state_dir):
    platform = LocalPlatform(state_dir)
    key = uuid.uuid4()
    session = platform.cassandra.session()
    session.execute("CREATE KEYSPACE IF NOT EXISTS keep WITH replication = "
                    "{'class': 'SimpleStrategy', 'replication_factor': 1}")
    session.execute("CREATE TABLE IF NOT EXISTS keep.t (k uuid PRIMARY KEY, v text)")
    session.execute("INSERT INTO keep.t (k, v) VALUES (%s, 'before')", (key,))
    session.cluster.shutdown()
    with MongoClient(platform.ferretdb.uri) as client:
        client.keep.t.insert_one({"_id": str(key), "v": "before"})

    assert cli(state_dir, "down").returncode == 0
    down = cli(state_dir, "status")
    assert down.returncode == 1 and down.stdout.count("down") >= 3, down.stdout
    assert cli(state_dir, "up", "--no-supervise").returncode == 0

    session = platform.cassandra.session()
    assert session.execute("SELECT v FROM keep.t WHERE k = %s", (key,)).one().v == "before"
    session.cluster.shutdown()
    with MongoClient(platform.ferretdb.uri) as client:
        assert client.keep.t.find_one({"_id": str(key)})["v"] == "before"


@pytest.mark.parametrize("victim", ["kafka", "cassandra", "ferretdb"])
def test_kill_9_is_reported_and_up_restarts_it(state_dir, victim):
    service = LocalPlatform(state_dir).by_name(victim)
    os.killpg(service.pid(), signal.SIGKILL)
    service._wait_gone(service._read_state()["pid"], 30)

    status = cli(state_dir, "status")
    assert status.returncode == 1
    assert f"not healthy: {victim}" in " ".join(status.stderr.split()), status.stderr
    assert cli(state_dir, "up", "--no-supervise").returncode == 0
    assert cli(state_dir, "status").returncode == 0


def test_logs_prints_the_service_log(state_dir):
    result = cli(state_dir, "logs", "kafka", "-n", "20")
    assert result.returncode == 0
    assert "starting kafka" in result.stdout


def _one_line_error(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 1
    assert "Traceback" not in result.stderr + result.stdout
    return " ".join(result.stderr.split())


def test_taken_port_gives_a_one_line_error(tmp_path, state_dir):
    taken = LocalPlatform(state_dir).ferretdb.ports["mongo"]
    result = cli(tmp_path / "other", "up", "--ferretdb-port", str(taken), "--kafka-port", str(free_port()),
                 "--kafka-controller-port", str(free_port()))
    message = _one_line_error(result)
    assert f"port {taken}" in message and "taken" in message, message


def test_missing_java_gives_a_one_line_error(tmp_path):
    manifest = json.loads((Path.home() / ".cache/userpipeline/manifest.json").read_text())
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "manifest.json").write_text(json.dumps({**manifest, "java_home": str(tmp_path / "no-java")}))
    result = cli(tmp_path / "state", "up", "--kafka-port", str(free_port()),
                 "--kafka-controller-port", str(free_port()), env={"USERPIPELINE_CACHE": str(cache)})
    message = _one_line_error(result)
    assert "Java 17" in message and "make bootstrap" in message, message


def test_corrupt_kafka_data_gives_a_one_line_error(tmp_path):
    state = tmp_path / "state"
    meta = state / "kafka" / "data" / "meta.properties"
    meta.parent.mkdir(parents=True)
    meta.write_text("this is not a kafka meta.properties\x00\x01")
    result = cli(state, "up", "--kafka-port", str(free_port()), "--kafka-controller-port", str(free_port()))
    message = _one_line_error(result)
    assert "kafka" in message and "userpipeline reset kafka" in message, message
    assert cli(state, "reset", "kafka", "--yes").returncode == 0
    assert not meta.exists()


def test_supervisor_restarts_every_killed_service_and_data_is_kept(state_dir):
    """`up` (supervised by default) leaves a supervisor running: SIGKILL anything, it comes back by itself."""
    from confluent_kafka import Producer

    from harness.polling import wait_for
    from producer.kit import consume

    assert cli(state_dir, "up").returncode == 0
    platform = LocalPlatform(state_dir)
    assert platform.supervisor.pid() is not None
    key, topic = uuid.uuid4(), f"keep-{uuid.uuid4().hex[:6]}"
    session = platform.cassandra.session()
    session.execute("CREATE KEYSPACE IF NOT EXISTS keep WITH replication = "
                    "{'class': 'SimpleStrategy', 'replication_factor': 1}")
    session.execute("CREATE TABLE IF NOT EXISTS keep.t (k uuid PRIMARY KEY, v text)")
    session.execute("INSERT INTO keep.t (k, v) VALUES (%s, 'supervised')", (key,))
    session.cluster.shutdown()
    with MongoClient(platform.ferretdb.uri) as client:
        client.keep.t.insert_one({"_id": str(key), "v": "supervised"})
    producer = Producer({"bootstrap.servers": platform.kafka.bootstrap, "acks": "all"})
    producer.produce(topic, b"supervised", str(key).encode())
    assert producer.flush(30) == 0

    for victim in ("kafka", "cassandra", "ferretdb"):
        service = platform.by_name(victim)
        before = service.pid()
        os.killpg(before, signal.SIGKILL)
        wait_for(lambda: service.pid() not in (None, before) and service.check_health(), 240, f"{victim} to be restarted")
    status = cli(state_dir, "status")
    assert status.returncode == 0, status.stdout + status.stderr
    assert platform.restarts() == {"kafka": 1, "cassandra": 1, "ferretdb": 1}
    rows = {cells[0]: cells for cells in (line.replace("│", " ").split() for line in status.stdout.splitlines()
                                          if "│" in line) if cells}
    assert rows["kafka"][1] == "healthy" and rows["kafka"][-1] == "1", status.stdout  # the restarts column
    session = platform.cassandra.session()
    assert session.execute("SELECT v FROM keep.t WHERE k = %s", (key,)).one().v == "supervised"
    session.cluster.shutdown()
    with MongoClient(platform.ferretdb.uri) as client:
        assert client.keep.t.find_one({"_id": str(key)})["v"] == "supervised"
    assert [m.value() for m in consume(platform.kafka.bootstrap, topic, 1)] == [b"supervised"]
    assert "supervisor.service_restarted" in platform.supervisor.log_tail(200)
