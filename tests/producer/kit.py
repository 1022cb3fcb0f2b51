"""Helpers shared by the producer tests: a reference reading of the data contract, a replaying HTTP
server for recorded randomuser responses, and Kafka/producer process helpers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml
from harness.polling import wait_for  # noqa: F401 - used by the producer tests

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "randomuser"
ONE_MIB = 1024 * 1024


# --- the data contract's dead-letter rules, written independently of the producer code ------------


def contract_reason(value: bytes, today: date) -> str | None:
    """The dead-letter reason docs/data-contract.md gives `value`, or None for a valid record."""
    if len(value) > ONE_MIB:
        return "oversized"
    try:
        user = json.loads(value)
    except ValueError:
        return "malformed_json"
    if not isinstance(user, dict):
        return "not_an_object"
    login = user.get("login")
    if not isinstance(login, dict) or not isinstance(login.get("uuid"), str) or not login["uuid"]:
        return "missing_id"
    dob = user.get("dob")
    if not isinstance(dob, dict) or dob.get("date") is None:
        return "missing_dob"
    try:
        born = date.fromisoformat(str(dob["date"])[:10])
    except ValueError:
        return "invalid_dob"
    if born > today or today.year - born.year > 150:
        return "invalid_dob"
    name, location, registered = user.get("name"), user.get("location"), user.get("registered")
    if (not isinstance(name, dict) or not isinstance(location, dict) or not isinstance(dob.get("age"), int)
            or not isinstance(registered, dict) or not isinstance(user.get("email"), str)):
        return "wrong_type"
    return None


# --- a local HTTP server replaying recorded API answers ------------------------------------------


@dataclass
class Answer:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    cut_connection_at: int | None = None  # announce the full length, send this many bytes, close


def fixture_body(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


class ReplayServer:
    """Answers each GET with the next scripted Answer (the last one repeats); records the queries."""

    def __init__(self, answers: list[Answer]):
        self.answers = list(answers)
        self.requests: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802
                server.requests.append(self.path)
                answer = server.answers.pop(0) if len(server.answers) > 1 else server.answers[0]
                self.send_response(answer.status)
                for key, value in {"Content-Type": "application/json; charset=utf-8", **answer.headers}.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(answer.body)))
                if answer.cut_connection_at is not None:
                    self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(answer.body[: answer.cut_connection_at])
                self.wfile.flush()
                if answer.cut_connection_at is not None:
                    self.close_connection = True

            def log_message(self, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}/api/"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def __enter__(self) -> ReplayServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


# --- spec files, producer processes, Kafka reads -------------------------------------------------


def write_spec(path: Path, topic: str, **overrides: Any) -> Path:
    spec: dict[str, Any] = {
        "source": {"type": "synthetic", "seed": 7, "minorRatio": 0.1, "brokenRatio": 0.0},
        "producer": {"ratePerSecond": 100000, "paused": False},
        "topic": {"name": topic, "partitions": 3, "replicas": 1, "retention": "2d"},
    }
    for dotted, value in overrides.items():
        section, key = dotted.split(".")
        spec.setdefault(section, {})[key] = value
    document = {"apiVersion": "userpipeline.io/v1alpha1", "kind": "UserPipeline", "metadata": {"name": "test"}, "spec": spec}
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    os.replace(tmp, path)  # atomic, like an editor or a ConfigMap update
    return path


def producer_command(spec: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "userpipeline.jobs.producer", "--spec", str(spec), *args]


def start_producer(spec: Path, bootstrap: str, log: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    env = {**os.environ, "USERPIPELINE_KAFKA_BOOTSTRAP": bootstrap, "USERPIPELINE_LOG_FORMAT": "json", **(env or {})}
    with open(log, "ab") as out:
        return subprocess.Popen(producer_command(spec, *args), stdout=out, stderr=subprocess.STDOUT, env=env)


def read_progress(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


@contextmanager
def consumer(bootstrap: str, topic: str) -> Iterator[Any]:
    from confluent_kafka import Consumer

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"test-{topic}-{time.monotonic_ns()}",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.subscribe([topic])
    try:
        yield c
    finally:
        c.close()


def consume(bootstrap: str, topic: str, expected: int, timeout: float = 60.0) -> list[Any]:
    """Read at least `expected` records (and whatever else arrives in the same polls) from the topic."""
    records: list[Any] = []
    with consumer(bootstrap, topic) as c:
        deadline = time.monotonic() + timeout
        while len(records) < expected and time.monotonic() < deadline:
            for msg in c.consume(num_messages=1000, timeout=0.5):
                assert msg.error() is None, msg.error()
                records.append(msg)
    assert len(records) >= expected, f"only {len(records)} of {expected} records arrived in {topic}"
    return records


def end_offsets(bootstrap: str, topic: str) -> int:
    """How many records the topic holds in total (sum of high watermarks)."""
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"offsets-{time.monotonic_ns()}"})
    try:
        partitions = c.list_topics(topic, timeout=10).topics[topic].partitions
        return sum(c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in partitions)
    finally:
        c.close()
