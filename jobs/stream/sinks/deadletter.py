"""The dead-letter topic `<raw topic>.dlq`: one JSON record per rejected input, written by Spark's Kafka sink.

Record (docs/data-contract.md): `{"reason", "detail", "source": {"topic", "partition", "offset",
"timestamp" (ms since the epoch)}, "payload" (its structure without its values: payload_shape.py),
"payloadBytes", "payloadHmac" (keyed hash of the value), "hmacKeyId"}`, keyed by the source key. No
personal value travels in plaintext: a dead letter says what was wrong and where the record is, the raw
topic (with its own, short retention) holds the record itself. Delivery is at least once: a batch that
crashes between sending and recording it in the journal sends its dead letters again;
`source.partition`/`source.offset` identify duplicates.

The letter is built in a Python UDF whose closure holds the key (as pseudonymize.py does): the key never
appears in a query plan, and the UDF runs only over the rejected rows.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from userpipeline.jobs.stream.payload_shape import summarize
from userpipeline.jobs.stream.pseudonymize import Pseudonymizer
from userpipeline.jobs.stream.transform import REJECTED

SINK_REJECTED = "sink_rejected"


def dead_letter_topic(topic: str) -> str:
    return f"{topic}.dlq"


def letter(pseudonymizer: Pseudonymizer, reason: str, detail: str | None, topic: str, partition: int, offset: int,
           timestamp_ms: int | None, value: bytes | None) -> str:
    """One dead-letter record as JSON text."""
    return json.dumps({
        "reason": reason,
        "detail": detail,
        "source": {"topic": topic, "partition": partition, "offset": offset, "timestamp": timestamp_ms},
        "payload": summarize(value, pseudonymizer),
        "payloadBytes": None if value is None else len(value),
        "payloadHmac": None if value is None else pseudonymizer.fingerprint(value),
        "hmacKeyId": pseudonymizer.key_id,
    }, ensure_ascii=False)


def _letter_udf(pseudonymizer: Pseudonymizer) -> Callable[..., Column]:
    def build(reason, detail, topic, partition, offset, timestamp_ms, value):  # no type hints: see pseudonymize._udf
        return letter(pseudonymizer, reason, detail, topic, partition, offset, timestamp_ms,
                      None if value is None else bytes(value))

    return F.udf(build, T.StringType(), useArrow=False)


def dead_letters(classified: DataFrame, pseudonymizer: Pseudonymizer) -> DataFrame:
    """(key, value) rows of the dead-letter records of a classified batch."""
    value = _letter_udf(pseudonymizer)("reason", "detail", "topic", "source_partition", "source_offset",
                                       "event_time_ms", "payload")
    return classified.where(F.col("status") == REJECTED).select("key", value.alias("value"))


def sink_rejected_letters(raw: DataFrame, rejected: Sequence[tuple[int, int, str]], pseudonymizer: Pseudonymizer) -> DataFrame:
    """(key, value) rows of `sink_rejected` records for the (partition, offset, detail) of the raw Kafka batch."""
    wanted = raw.sparkSession.createDataFrame(list(rejected), "partition int, offset long, detail string")
    rows = raw.join(F.broadcast(wanted), ["partition", "offset"])
    value = _letter_udf(pseudonymizer)(F.lit(SINK_REJECTED), "detail", "topic", "partition", "offset",
                                       F.unix_millis("timestamp"), "value")
    return rows.select("key", value.alias("value"))


def send(frame: DataFrame, bootstrap: str, topic: str) -> None:
    (frame.write.format("kafka")
     .option("kafka.bootstrap.servers", bootstrap)
     .option("kafka.acks", "all")
     .option("kafka.enable.idempotence", "true")
     .option("kafka.compression.type", "lz4")
     .option("topic", topic)
     .save())
