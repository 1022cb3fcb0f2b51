"""The producer against a real Kafka: contents, keys, topics, live spec changes, SIGTERM and SIGKILL."""

import json
import signal
import subprocess
import uuid
from collections import Counter

import httpx
import psutil
import pytest
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic, ResourceType

from producer.kit import (
    Answer,
    ReplayServer,
    consume,
    end_offsets,
    fixture_body,
    producer_command,
    read_progress,
    start_producer,
    wait_for,
    write_spec,
)
from userpipeline.jobs.producer.progress import read_ack_log
from userpipeline.operator.local.services.ports import free_port
from userpipeline.jobs.producer.publisher import DeliveryError, Publisher, ensure_topics, producer_config
from userpipeline.jobs.producer.sanitize import CREDENTIALS, Message, to_message
from userpipeline.jobs.producer.synthetic import SyntheticSource, edge_records
from userpipeline.operator.spec.model import load_userpipeline

pytestmark = pytest.mark.timeout(300)


def new_topic() -> str:
    return f"users-{uuid.uuid4().hex[:8]}"


def run_producer(spec, kafka, tmp_path, *args, timeout=180) -> subprocess.CompletedProcess:
    env_log = tmp_path / "producer.log"
    proc = start_producer(spec, kafka.bootstrap, env_log, *args)
    try:
        proc.wait(timeout)
    finally:
        proc.kill()
    return subprocess.CompletedProcess(proc.args, proc.returncode, env_log.read_text(), "")


def _alive(process: psutil.Process) -> bool:
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def has_credentials(value: bytes) -> bool:
    return any(f'"{c}"'.encode() in value for c in CREDENTIALS)


def test_producer_config_is_idempotent_acks_all_compressed_batched():
    config = producer_config("127.0.0.1:9092")
    assert config["enable.idempotence"] is True and config["acks"] == "all"
    assert config["compression.type"] in ("lz4", "zstd") and config["linger.ms"] > 0
    Publisher(config, "unused")  # librdkafka accepts the combination


def test_undeliverable_records_are_counted_logged_and_raised_not_dropped():
    config = producer_config("127.0.0.1:1", **{"delivery.timeout.ms": 1000, "linger.ms": 5, "log_level": 0})
    publisher = Publisher(config, "nowhere", max_requeues=1)
    for i in range(3):
        publisher.send(i, Message(f"k{i}".encode(), b"{}"))
    publisher.send(3, Message(b"big", b"x" * (config["message.max.bytes"] + 1)))
    with pytest.raises(DeliveryError, match="4 record"):
        publisher.flush(timeout=30)
    assert (publisher.produced, publisher.acked, publisher.failed) == (4, 0, 4)


def test_synthetic_records_arrive_sanitized_keyed_and_exactly_once(kafka, tmp_path):
    topic = new_topic()
    spec = write_spec(tmp_path / "p.yaml", topic, **{"source.brokenRatio": 0.1})
    progress, acked = tmp_path / "progress.json", tmp_path / "acked.log"
    result = run_producer(spec, kafka, tmp_path, "--count", "300", "--progress-file", str(progress), "--acked-log", str(acked))
    assert result.returncode == 0, result.stdout[-3000:]

    state = read_progress(progress)
    assert (state["produced"], state["acked"], state["failed"], state["nextIndex"], state["state"]) == (300, 300, 0, 300, "done")
    assert end_offsets(kafka.bootstrap, topic) == 300, "no duplicates from a clean run"
    received = consume(kafka.bootstrap, topic, 300)
    source = SyntheticSource(seed=7, minor_ratio=0.1, broken_ratio=0.1)
    expected = [to_message(source.record(i).payload) for i in range(300)]
    assert Counter((m.key(), m.value()) for m in received) == Counter((e.key, e.value) for e in expected)
    assert not any(has_credentials(m.value()) for m in received)
    assert sum(m.key() is None for m in received) == sum(e.key is None for e in expected) > 0

    log = read_ack_log(acked)
    assert sorted(i for i, _ in log) == list(range(300))
    assert {k for _, k in log if k} == {e.key.decode() for e in expected if e.key}

    admin = AdminClient({"bootstrap.servers": kafka.bootstrap})
    assert len(admin.list_topics(topic, timeout=10).topics[topic].partitions) == 3
    configs = {}
    for name in (topic, f"{topic}.dlq"):
        resource = ConfigResource(ResourceType.TOPIC, name)
        configs[name] = admin.describe_configs([resource])[resource].result()
    assert configs[topic]["retention.ms"].value == str(2 * 86400 * 1000)
    assert configs[f"{topic}.dlq"]["retention.ms"].value == str(7 * 86400 * 1000)
    assert int(configs[topic]["max.message.bytes"].value) >= 5 * 1024 * 1024
    assert configs[topic]["message.timestamp.type"].value == "LogAppendTime"  # broker time orders versions (issue 11)
    assert not any(word in result.stdout for word in ("@gmail.com", "example.com", "password")), "no PII in logs"


def test_edge_records_including_5_mb_are_published(kafka, tmp_path):
    topic = new_topic()
    spec = load_userpipeline(write_spec(tmp_path / "p.yaml", topic)).spec
    ensure_topics(kafka.bootstrap, spec)
    ensure_topics(kafka.bootstrap, spec)  # idempotent
    edges = edge_records()
    publisher = Publisher(producer_config(kafka.bootstrap), topic)
    for i, edge in enumerate(edges):
        publisher.send(i, to_message(edge.payload))
    publisher.flush(60)
    received = {m.value(): m.key() for m in consume(kafka.bootstrap, topic, len(edges))}
    for edge in edges:
        message = to_message(edge.payload)
        assert received[message.value] == message.key, edge.name
    assert max(len(v) for v in received) >= 5 * 1024 * 1024


def test_spec_changes_reach_the_running_producer_and_sigterm_flushes(kafka, tmp_path):
    topic = new_topic()
    spec = write_spec(tmp_path / "p.yaml", topic, **{"producer.paused": True, "producer.ratePerSecond": 200})
    progress, acked = tmp_path / "progress.json", tmp_path / "acked.log"
    port = free_port()
    proc = start_producer(spec, kafka.bootstrap, tmp_path / "producer.log", "--progress-file", str(progress),
                          "--acked-log", str(acked), "--metrics-port", str(port))
    try:
        wait_for(lambda: read_progress(progress).get("state") == "paused", 60, "the producer to start paused")
        assert read_progress(progress)["produced"] == 0
        metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
        assert "userpipeline_producer_paused 1.0" in metrics and "userpipeline_producer_records_acked_total 0.0" in metrics

        write_spec(spec, topic, **{"producer.paused": False, "producer.ratePerSecond": 200})
        wait_for(lambda: read_progress(progress).get("acked", 0) > 0, 30, "records after resuming")
        write_spec(spec, topic, **{"producer.paused": False, "producer.ratePerSecond": 1000})
        wait_for(lambda: read_progress(progress).get("ratePerSecond") == 1000, 30, "the new rate")
        write_spec(spec, topic, **{"producer.paused": True, "producer.ratePerSecond": 1000})
        wait_for(lambda: read_progress(progress).get("state") == "paused", 30, "the pause")

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
    finally:
        proc.kill()
    state = read_progress(progress)
    assert state["state"] == "stopped" and state["failed"] == 0 and state["acked"] == state["produced"] > 0
    assert len(read_ack_log(acked)) == state["acked"] == end_offsets(kafka.bootstrap, topic)


def test_producer_killed_and_restarted_every_acknowledged_id_is_in_kafka(kafka, tmp_path):
    topic, count = new_topic(), 8000
    spec = write_spec(tmp_path / "p.yaml", topic, **{"producer.ratePerSecond": 2000, "source.brokenRatio": 0.05})
    progress, acked = tmp_path / "progress.json", tmp_path / "acked.log"
    args = ("--count", str(count), "--progress-file", str(progress), "--acked-log", str(acked))
    proc = start_producer(spec, kafka.bootstrap, tmp_path / "producer.log", *args)
    try:
        wait_for(lambda: read_progress(progress).get("nextIndex", 0) >= 2000, 120, "2000 acknowledged records")
        workers = psutil.Process(proc.pid).children()
        assert workers, "the synthetic records come from a worker process"
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        proc.kill()
    wait_for(lambda: not any(_alive(w) for w in workers), 30, "the generator workers to end with the producer")
    acked_before_kill = read_ack_log(acked)
    resumed_at = read_progress(progress)["nextIndex"]
    assert 0 < resumed_at < count

    result = run_producer(spec, kafka, tmp_path, *args)
    assert result.returncode == 0, result.stdout[-3000:]
    assert read_progress(progress)["nextIndex"] == count
    acked_after = read_ack_log(acked)[len(acked_before_kill):]
    assert min(i for i, _ in acked_after) == resumed_at, "the restart resumed after the last contiguous ack"

    total = end_offsets(kafka.bootstrap, topic)
    in_kafka = Counter(m.key().decode() for m in consume(kafka.bootstrap, topic, total) if m.key())
    acked_keys = {k for _, k in acked_before_kill + acked_after if k}
    assert acked_keys <= set(in_kafka), "every acknowledged id is in Kafka"
    source = SyntheticSource(seed=7, minor_ratio=0.1, broken_ratio=0.05)
    expected_keys = {m.key.decode() for m in (to_message(source.record(i).payload) for i in range(count)) if m.key}
    assert set(in_kafka) == expected_keys, "nothing lost, nothing foreign"


def test_randomuser_source_through_kafka_despite_429_500_and_truncation(kafka, tmp_path):
    page1, page2 = fixture_body("page1.json"), fixture_body("page2.json")
    answers = [Answer(429, b"", {"Retry-After": "1"}), Answer(500, b""), Answer(200, page1, cut_connection_at=300),
               Answer(200, page1), Answer(200, page2)]
    topic = new_topic()
    with ReplayServer(answers) as server:
        spec = write_spec(tmp_path / "p.yaml", topic, **{"source.type": "randomuser", "source.url": server.url, "source.batchSize": 5})
        result = run_producer(spec, kafka, tmp_path, "--count", "10", "--progress-file", str(tmp_path / "progress.json"))
    assert result.returncode == 0, result.stdout[-3000:]
    received = consume(kafka.bootstrap, topic, 10)
    uuids = {u["login"]["uuid"] for page in (page1, page2) for u in json.loads(page)["results"]}
    assert {m.key().decode() for m in received} == uuids and len(received) == 10
    assert not any(has_credentials(m.value()) for m in received)
    assert "producer.api_retry" in result.stdout
    assert read_progress(tmp_path / "progress.json")["acked"] == 10


def test_a_bad_spec_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("metadata: {name: x}\nspec: {producer: {ratePerSecond: -1}}\n")
    result = subprocess.run(producer_command(bad), capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "cannot start the producer" in result.stderr and "ratePerSecond" in result.stderr


def test_kafka_restarted_mid_run_nothing_is_lost(kafka, tmp_path):
    """Was a known intermittent stall; must pass every time (docs/reliability.md: 20 runs in a row)."""
    topic, count = new_topic(), 6000
    spec = write_spec(tmp_path / "p.yaml", topic, **{"producer.ratePerSecond": 1000})
    progress, acked = tmp_path / "progress.json", tmp_path / "acked.log"
    log = tmp_path / "producer.log"
    proc = start_producer(spec, kafka.bootstrap, log, "--count", str(count), "--progress-file", str(progress),
                          "--acked-log", str(acked), "--stall-warning-after", "2")
    try:
        wait_for(lambda: read_progress(progress).get("acked", 0) >= 1000, 120, "1000 acknowledged records")
        kafka.stop()
        stalled = wait_for(lambda: (p := read_progress(progress)).get("secondsWithoutAcks", 0) >= 2 and p, 60,
                           "the progress file to show records waiting without acknowledgements")
        assert stalled["outstanding"] > 0 and stalled["oldestUnackedSeconds"] >= 2
        wait_for(lambda: "producer.acks_stalled" in log.read_text(), 30, "a warning that acks stopped")
        kafka.start(timeout=300)  # a loaded 2-core machine can take minutes
        assert proc.wait(120) == 0, log.read_text()[-3000:]
    finally:
        proc.kill()
    state = read_progress(progress)
    assert (state["acked"], state["failed"], state["nextIndex"], state["outstanding"]) == (count, 0, count, 0)
    assert state["clientRecoveries"] == 0, "the Kafka client recovered on its own (re-bootstrap), not by the watchdog"
    in_kafka = {m.key().decode() for m in consume(kafka.bootstrap, topic, count) if m.key()}
    assert {k for _, k in read_ack_log(acked)} == in_kafka and len(in_kafka) == count


def test_a_silent_client_is_replaced_and_every_queued_record_is_resent(kafka, tmp_path):
    """The watchdog's remedy: purge the client, re-send what it held on a fresh one; nothing lost."""
    topic = new_topic()
    acks = []
    publisher = Publisher(producer_config(kafka.bootstrap, **{"linger.ms": 5000}), topic, on_ack=acks.append)
    ensure_topics(kafka.bootstrap, load_userpipeline(write_spec(tmp_path / "p.yaml", topic)).spec)
    for i in range(300):
        publisher.send(i, Message(f"user-{i}".encode(), b"{}"))
    assert publisher.outstanding == 300 and publisher.seconds_without_acks() >= 0
    publisher.recover()
    assert publisher.recoveries == 1
    publisher.flush(60)
    assert (publisher.acked, publisher.failed, publisher.outstanding) == (300, 0, 0)
    assert sorted(a.index for a in acks) == list(range(300))
    assert publisher.oldest_unacked_seconds() == 0 and publisher.seconds_without_acks() == 0
    assert {m.key() for m in consume(kafka.bootstrap, topic, 300)} == {f"user-{i}".encode() for i in range(300)}


def test_unmanaged_topics_are_waited_for_never_created_or_altered(kafka, tmp_path):
    """USERPIPELINE_MANAGE_TOPICS=false (Kubernetes: Strimzi KafkaTopics own them)."""
    topic = new_topic()
    spec = write_spec(tmp_path / "p.yaml", topic)
    log, progress = tmp_path / "producer.log", tmp_path / "progress.json"
    env = {"USERPIPELINE_MANAGE_TOPICS": "false"}
    proc = start_producer(spec, kafka.bootstrap, log, "--count", "50", "--progress-file", str(progress), env=env)
    try:
        wait_for(lambda: "producer.topic_missing" in log.read_text(), 60, "the producer to wait for the topic")
        admin = AdminClient({"bootstrap.servers": kafka.bootstrap})
        assert topic not in admin.list_topics(timeout=10).topics, "the producer created the topic"
        admin.create_topics([NewTopic(topic, 1, 1, config={"retention.ms": "3600000"})])[topic].result()
        assert proc.wait(120) == 0, log.read_text()[-3000:]
    finally:
        proc.kill()
    assert read_progress(progress)["acked"] == 50
    resource = ConfigResource(ResourceType.TOPIC, topic)
    assert admin.describe_configs([resource])[resource].result()["retention.ms"].value == "3600000", "config altered"
    assert f"{topic}.dlq" not in admin.list_topics(timeout=10).topics


def test_a_producer_without_a_progress_file_continues_after_the_topics_records(kafka, tmp_path):
    """A new pod has no progress file: the synthetic run continues after the records already in the topic (their
    header holds seed and index) instead of sending the same users again from index 0."""
    topic = new_topic()
    spec = write_spec(tmp_path / "p.yaml", topic, **{"producer.ratePerSecond": 2000})
    first = run_producer(spec, kafka, tmp_path, "--count", "200")
    assert first.returncode == 0, first.stdout[-3000:]
    second = run_producer(spec, kafka, tmp_path, "--count", "500")
    assert second.returncode == 0, second.stdout[-3000:]

    resumed = [json.loads(line) for line in second.stdout.splitlines() if "producer.resumed_from_topic" in line]
    assert resumed and 0 < resumed[0]["start_index"] <= 200, second.stdout[-2000:]
    total = end_offsets(kafka.bootstrap, topic)
    assert 500 <= total < 500 + 200 - resumed[0]["start_index"] + 1
    source = SyntheticSource(seed=7, minor_ratio=0.1, broken_ratio=0.0)
    expected = {m.key for m in (to_message(source.record(i).payload) for i in range(500)) if m.key}
    assert {m.key() for m in consume(kafka.bootstrap, topic, total)} == expected
