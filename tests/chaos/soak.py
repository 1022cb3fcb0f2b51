"""Chaos soak: the local pipeline at a steady rate while services are SIGKILLed and bad records arrive.

    .venv/bin/python tests/chaos/soak.py [--minutes 10] [--seed N] [--rate 50]     (make chaos)

Starts its own platform (`userpipeline up -f`, supervised, on free ports, in a temporary state
directory), then for `--minutes`: SIGKILLs a random service every 20-60 s (each at least
`--kills-per-service` times, whatever the minutes) and injects a round of bad records (dead-letter
cases, oversized fields, bad ids, duplicates, out-of-order versions) every `--inject-every` seconds.
Then it pauses the producer, lets the supervisor bring everything back, waits for the stream to drain
and checks (soak_verify.py). One-screen report; exit 1 on any loss or mismatch, 2 on a setup error.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # soak_inject, soak_verify (never the clone root)

import yaml  # noqa: E402
from confluent_kafka import Consumer, TopicPartition  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from soak_inject import KINDS, Injector  # noqa: E402
from soak_verify import Verdict, Verifier  # noqa: E402
from userpipeline.jobs.producer.synthetic import SyntheticSource  # noqa: E402
from userpipeline.operator.local.platform import LocalPlatform  # noqa: E402
from userpipeline.operator.local.services.ports import free_port  # noqa: E402

VICTIMS = ("kafka", "cassandra", "ferretdb", "producer", "stream", "dashboard", "reconciler")
TOPIC = "users.raw"
console = Console(width=110)


def say(message: str) -> None:
    console.print(f"[dim]{time.strftime('%H:%M:%S')}[/] {message}", highlight=False)


def wait_until(condition, timeout: float, what: str, interval: float = 2.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")


class Soak:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.rng = random.Random(args.seed)
        self.state = Path(args.state_dir or tempfile.mkdtemp(prefix="userpipeline-soak-")).resolve()
        self.spec_file = self.state / "soak-pipeline.yaml"
        self.kills: Counter[str] = Counter({name: 0 for name in VICTIMS})
        self.platform: LocalPlatform | None = None
        self.injector: Injector | None = None
        self.inject_error: BaseException | None = None

    # -- the pipeline ---------------------------------------------------------------------------
    def spec(self, paused: bool) -> dict:
        return {"apiVersion": "userpipeline.io/v1alpha1", "kind": "UserPipeline", "metadata": {"name": "soak"},
                "spec": {"source": {"type": "synthetic", "seed": self.args.seed, "minorRatio": 0.05,
                                    "brokenRatio": self.args.broken_ratio},
                         "producer": {"ratePerSecond": self.args.rate, "paused": paused},
                         "topic": {"name": TOPIC, "partitions": 3, "retention": "7d"},
                         "stream": {"triggerInterval": "2s"}}}

    def write_spec(self, paused: bool) -> None:
        tmp = self.spec_file.with_suffix(".tmp")
        tmp.write_text(yaml.safe_dump(self.spec(paused)))
        os.replace(tmp, self.spec_file)

    def cli(self, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-P", "-m", "userpipeline.operator.cli", *args, "--state-dir", str(self.state)],
                              capture_output=True, text=True, timeout=timeout,
                              env={**os.environ, "PYTHONSAFEPATH": "1", "COLUMNS": "160"})

    def up(self) -> None:
        self.state.mkdir(parents=True, exist_ok=True)
        self.write_spec(paused=False)
        ports = [f"--kafka-port={free_port()}", f"--kafka-controller-port={free_port()}", f"--cassandra-port={free_port()}",
                 f"--cassandra-storage-port={free_port()}", f"--ferretdb-port={free_port()}",
                 f"--port=dashboard.http={free_port()}", f"--port=producer.metrics={free_port()}"]
        say(f"starting the pipeline in {self.state}")
        result = self.cli("up", "-f", str(self.spec_file), *ports)
        if result.returncode != 0:
            raise RuntimeError(f"`userpipeline up` failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
        self.platform = LocalPlatform(self.state)
        self.injector = Injector(self.platform.kafka.bootstrap, TOPIC, self.args.seed, skip=set(self.args.skip))
        say("pipeline up: " + ", ".join(s.name for s in self.platform.status()))

    # -- chaos ----------------------------------------------------------------------------------
    def run(self) -> None:
        stop = threading.Event()
        injector = threading.Thread(target=self._inject_loop, args=(stop,), daemon=True)
        injector.start()
        try:
            self._kill_loop()
        finally:
            stop.set()
            injector.join(900)  # its last round may wait for Kafka to come back
        if self.inject_error is not None:
            raise RuntimeError(f"injecting bad records failed: {self.inject_error}")

    def _inject_loop(self, stop: threading.Event) -> None:
        try:
            while not stop.wait(self.args.inject_every):
                self.injector.inject_round()
            self.injector.inject_round()
            self.injector.flush_pending()
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            self.inject_error = exc

    def _kill_loop(self) -> None:
        low, high = self.args.kill_interval
        deadline = time.monotonic() + self.args.minutes * 60
        bag: list[str] = []
        while True:
            left = deadline - time.monotonic()
            owed = sum(max(0, self.args.kills_per_service - n) for n in self.kills.values())
            if left <= 0 and owed == 0:
                return
            # Spread the kills still owed over the time left; never closer than `low`.
            wait = self.rng.uniform(low, high) if owed == 0 else self.rng.uniform(low, max(low, min(high, left / owed)))
            time.sleep(max(0.0, min(wait, left) if owed == 0 else wait))
            if time.monotonic() >= deadline and owed == 0:
                return
            if not bag:
                bag = list(VICTIMS)
                self.rng.shuffle(bag)
            self._kill_one(bag)

    def _kill_one(self, bag: list[str]) -> None:
        """SIGKILL the next victim in the bag that runs (one being restarted is tried again later)."""
        for name in list(bag):
            service = self.platform.by_name(name)
            pid = service.pid()
            if pid is None:
                continue
            os.killpg(pid, signal.SIGKILL)
            bag.remove(name)
            self.kills[name] += 1
            say(f"SIGKILL {name} (pid {pid}); kills so far: {sum(self.kills.values())}")
            return
        say("every service left in this round is restarting; no kill this time")

    # -- the end: pause, recover, drain ---------------------------------------------------------
    def settle(self) -> dict:
        self.write_spec(paused=True)
        say("producer paused; waiting for every service to be back")
        wait_until(lambda: all(s.healthy for s in self.platform.status()), self.args.recovery_timeout,
                   "every service to be healthy again")
        producer = next(app for app in self.platform.apps() if app.name == "producer")

        def quiet() -> dict | None:
            before = producer.progress()
            time.sleep(3)
            after = producer.progress()
            return after if (after.get("paused") and after.get("outstanding") == 0 and before.get("acked") == after.get("acked")
                             and before.get("nextIndex") == after.get("nextIndex")) else None

        progress = wait_until(quiet, self.args.recovery_timeout, "the paused producer to have nothing outstanding", 0)
        say(f"producer quiet at {progress['acked']} acknowledged records; waiting for the stream to drain")

        def drained() -> bool:
            health = self.platform.health_document() or {}
            return health.get("processed") == topic_size(self.platform.kafka.bootstrap, TOPIC)

        wait_until(drained, self.args.recovery_timeout, "the stream to process every raw record", 5)
        return progress

    def verify(self, progress: dict) -> Verdict:
        source = SyntheticSource(seed=self.args.seed, minor_ratio=0.05, broken_ratio=self.args.broken_ratio)
        return Verifier(self.platform, TOPIC, source, progress["nextIndex"], self.injector.injected).run()

    def down(self) -> None:
        self.cli("down", timeout=300)
        if not self.args.keep:
            shutil.rmtree(self.state, ignore_errors=True)


def topic_size(bootstrap: str, topic: str) -> int:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "soak-size"})
    try:
        partitions = consumer.list_topics(topic, timeout=30).topics[topic].partitions
        return sum(high - low for low, high in (consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)
                                                 for p in partitions))
    finally:
        consumer.close()


def report(soak: Soak, progress: dict, verdict: Verdict, seconds: float) -> dict:
    restarts = soak.platform.restarts()
    kills = Table(title="kills (SIGKILL) and supervisor restarts", show_edge=False)
    for column in ("service", "kills", "restarts"):
        kills.add_column(column)
    for name in VICTIMS:
        kills.add_row(name, str(soak.kills[name]), str(restarts.get(name, 0)))
    records = Table(title="records", show_edge=False)
    records.add_column("what")
    records.add_column("count", justify="right")
    injected = soak.injector.by_kind()
    lost = len(verdict.lost) + len(verdict.missing_letters) + int(progress.get("failed", 0))
    for what, count in (("acknowledged by the producer", progress.get("acked")),
                        ("producer failures", progress.get("failed")),
                        ("injected bad/tricky records", sum(injected.values())),
                        ("raw topic records", verdict.raw_records), ("users expected in Cassandra", verdict.expected_stored),
                        ("users in Cassandra", verdict.stored), ("rejected (dead-lettered)", verdict.rejected),
                        ("filtered (minors)", verdict.filtered), ("lost", lost)):
        records.add_row(what, str(count))
    console.rule(f"chaos soak: {soak.args.minutes} min, seed {soak.args.seed}, {soak.args.rate}/s, {seconds / 60:.1f} min in all")
    grid = Table.grid(padding=(0, 4))
    grid.add_row(kills, records)
    console.print(grid)
    console.print("injected: " + ", ".join(f"{kind} {injected.get(kind, 0)}" for kind in KINDS), highlight=False)
    for name, items in verdict.failures.items():
        console.print(f"[red]✗ {name}: {len(items)}[/] e.g. {'; '.join(items[:3])}", highlight=False)
    ok = verdict.ok and lost == 0
    console.print(f"[bold {'green' if ok else 'red'}]lost: {lost}  {'PASS' if ok else 'FAIL'}[/]")
    return {"ok": ok, "lost": lost, "kills": dict(soak.kills), "restarts": restarts, "injected": injected,
            "acked": progress.get("acked"), "rawRecords": verdict.raw_records, "stored": verdict.stored,
            "rejected": verdict.rejected, "filtered": verdict.filtered, "failures": verdict.failures,
            "seconds": round(seconds)}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0, help="how long to run the chaos (default 10)")
    parser.add_argument("--seed", type=int, default=int(time.time()) % 100_000, help="random seed (kills, records)")
    parser.add_argument("--rate", type=float, default=50.0, help="producer records per second (default 50)")
    parser.add_argument("--broken-ratio", type=float, default=0.02, help="share of broken records from the producer")
    parser.add_argument("--kill-interval", type=float, nargs=2, default=(20.0, 60.0), metavar=("MIN", "MAX"),
                        help="seconds between two kills (default 20 60)")
    parser.add_argument("--kills-per-service", type=int, default=2, help="kill every service at least this often")
    parser.add_argument("--inject-every", type=float, default=15.0, help="seconds between two rounds of bad records")
    parser.add_argument("--skip", action="append", default=[], choices=KINDS, help="a kind of bad record not to inject")
    parser.add_argument("--recovery-timeout", type=float, default=900.0, help="seconds to wait for recovery and drain")
    parser.add_argument("--state-dir", help="state directory (default: a new temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep the state directory (logs, data) afterwards")
    parser.add_argument("--json", type=Path, help="also write the report as JSON here")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    soak = Soak(args)
    started = time.monotonic()
    try:
        soak.up()
        soak.run()
        progress = soak.settle()
        verdict = soak.verify(progress)
    except (RuntimeError, TimeoutError, OSError) as exc:
        console.print(f"[bold red]soak failed:[/] {exc}\nlogs: {soak.state} (kept)", highlight=False)
        if soak.platform is not None:
            console.print(soak.cli("status").stdout[-3000:], highlight=False)
        args.keep = True
        soak.down()
        return 2
    summary = report(soak, progress, verdict, time.monotonic() - started)
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))
    args.keep = args.keep or not summary["ok"]
    soak.down()
    if args.keep:
        console.print(f"state, logs and data kept in {soak.state}")
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
