"""The chaos soak's bad records: published straight to the raw topic, each with what the stream must make of it.

Every injected record is keyed by a fresh UUID (its marker) that also appears in its first bytes, so
the verifier finds it in the dead-letter topic (by marker) or in Cassandra (by key) whatever happened.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from confluent_kafka import Producer

from userpipeline.jobs.producer.publisher import producer_config
from userpipeline.jobs.producer.sanitize import without_credentials
from userpipeline.jobs.producer.synthetic import STORED, SyntheticSource, api_date, dumps, utc_today

# Reason codes (docs/data-contract.md, `Reason` in jobs/stream/validate.py).
FIELD_TOO_LONG = "field_too_long"
INVALID_ID = "invalid_id"
MISSING_ID = "missing_id"  # a blank id (only whitespace, e.g. a tab) counts as missing
# Longer than the client's delivery.timeout.ms (300 s): every record ends acknowledged or failed (then re-sent).
FLUSH_SECONDS = 330
# Each kind of bad record, and the share of a round it gets (a round is one of each, then repeats).
KINDS = ("malformed_json", "not_an_object", "missing_id", "missing_dob", "invalid_dob", "wrong_type",
         "oversized_field", "bad_id", "duplicate", "out_of_order")


@dataclass(frozen=True)
class Injected:
    kind: str
    marker: str  # a UUID in the key and the value
    expected: str  # STORED or a dead-letter reason
    copies: int = 1  # times it was published (duplicates)


@dataclass
class Injector:
    bootstrap: str
    topic: str
    seed: int
    skip: set[str] = field(default_factory=set)  # kinds not to inject
    injected: list[Injected] = field(default_factory=list)
    pending: list[tuple[str, bytes, bytes, int | None]] = field(default_factory=list)  # kind, key, value, timestamp

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.users = SyntheticSource(seed=self.seed + 7919, minor_ratio=0.0)
        config = producer_config(self.bootstrap, **{"client.id": "chaos-soak-injector", "log_level": 0})
        config.pop("logger", None)  # Kafka being down is the point here: its connection errors are noise
        self.producer = Producer(config)
        self.errors: list[str] = []
        self._index = 0

    def _user(self, marker: str) -> dict[str, Any]:
        """A valid adult user whose login.uuid is `marker` (credentials dropped, as the producer does)."""
        while True:
            record = self.users.record(self._index)
            self._index += 1
            if record.expected == STORED:
                user = without_credentials(json.loads(dumps(record.payload)))
                user["login"]["uuid"] = marker
                return user

    def inject_round(self) -> None:
        """One record of every kind (two or three for duplicates and versions), published with acks=all."""
        for kind in KINDS:
            if kind in self.skip:
                continue
            marker = str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
            getattr(self, f"_{kind}")(marker)
        self._publish()

    def _queue(self, kind: str, marker: str, value: bytes, expected: str, copies: int = 1,
               timestamp: int | None = None) -> None:
        self.pending.append((kind, marker.encode(), value, timestamp))
        if not any(i.marker == marker for i in self.injected[-20:]):
            self.injected.append(Injected(kind, marker, expected, copies))

    def _malformed_json(self, marker: str) -> None:
        self._queue("malformed_json", marker, f'{{"login": {{"uuid": "{marker}"}}, "name": '.encode(), "malformed_json")

    def _not_an_object(self, marker: str) -> None:
        self._queue("not_an_object", marker, json.dumps([marker, 1]).encode(), "not_an_object")

    def _missing_id(self, marker: str) -> None:
        user = self._user(marker)
        user["login"]["uuid"] = None
        user["login"]["username"] = f"nouuid-{marker}"
        self._queue("missing_id", marker, dumps(user).encode(), "missing_id")

    def _missing_dob(self, marker: str) -> None:
        user = self._user(marker)
        del user["dob"]
        self._queue("missing_dob", marker, dumps(user).encode(), "missing_dob")

    def _invalid_dob(self, marker: str) -> None:
        user = self._user(marker)
        user["dob"]["date"] = api_date(utc_today() + timedelta(days=400), self.rng)
        self._queue("invalid_dob", marker, dumps(user).encode(), "invalid_dob")

    def _wrong_type(self, marker: str) -> None:
        user = self._user(marker)
        user["dob"]["age"] = "thirty-one"
        self._queue("wrong_type", marker, dumps(user).encode(), "wrong_type")

    def _oversized_field(self, marker: str) -> None:
        """The issue's case: a 60,000-character first name once stalled the stream."""
        user = self._user(marker)
        user["name"]["first"] = "A" * 60_000
        self._queue("oversized_field", marker, dumps(user).encode(), FIELD_TOO_LONG)

    def _bad_id(self, marker: str) -> None:
        """login.uuid not a UUID (a tab, or text); the marker travels in login.username."""
        user = self._user(marker)
        bad = self.rng.choice(["\t", " \t ", f"user-{marker[:8]}", marker.replace("-", ""), f" {marker}", marker[:35]])
        user["login"]["uuid"] = bad
        user["login"]["username"] = f"badid-{marker}"
        self._queue("bad_id", marker, dumps(user).encode(), MISSING_ID if not bad.strip() else INVALID_ID)

    def _duplicate(self, marker: str) -> None:
        value = dumps(self._user(marker)).encode()
        copies = self.rng.randint(2, 3)
        for _ in range(copies):
            self._queue("duplicate", marker, value, STORED, copies)

    def _out_of_order(self, marker: str) -> None:
        """The newer version (later Kafka timestamp) is published first; the older one after it must lose."""
        newer, older = self._user(marker), self._user(marker)
        now = int(time.time() * 1000)
        self._queue("out_of_order", marker, dumps(newer).encode(), STORED, 2, timestamp=now)
        self._queue("out_of_order", marker, dumps(older).encode(), STORED, 2, timestamp=now - 60_000)

    def _publish(self) -> None:
        """Publish everything queued; what Kafka did not take (it may be down) stays queued for the next round."""
        batch, self.pending = self.pending, []
        failed: list[tuple[str, bytes, bytes, int | None]] = []
        for item in batch:
            kind, key, value, timestamp = item

            def delivered(err: Any, _msg: Any, item: tuple = item) -> None:
                if err is not None:
                    failed.append(item)
                    self.errors.append(err.str())

            extra = {"timestamp": timestamp} if timestamp is not None else {}
            self.producer.produce(self.topic, value, key, on_delivery=delivered, **extra)
            # Versions must reach Kafka in order: the newer one first.
            if kind == "out_of_order":
                self.producer.flush(FLUSH_SECONDS)
        left = self.producer.flush(FLUSH_SECONDS)
        if left:
            raise RuntimeError(f"{left} injected records got neither an acknowledgement nor an error in "
                               f"{FLUSH_SECONDS} s: the Kafka client is stuck")
        self.pending = failed + self.pending

    def flush_pending(self, attempts: int = 5) -> None:
        """Publish what earlier rounds could not (Kafka was down); an error if it never gets through."""
        for _ in range(attempts):
            if not self.pending:
                return
            self._publish()
        if self.pending:
            raise RuntimeError(f"{len(self.pending)} injected records were never acknowledged: {self.errors[-3:]}")

    def by_kind(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for item in self.injected:
            counts[item.kind] = counts.get(item.kind, 0) + 1
        return counts
