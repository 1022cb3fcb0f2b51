"""The dead-letter topic `<raw topic>.dlq`: one JSON record per rejected input, written by Spark's Kafka sink.

Record (docs/data-contract.md): `{"reason", "detail", "source": {"topic", "partition", "offset",
"timestamp" (ms since the epoch)}, "payload" (the value as UTF-8 text, cut at 64 KiB), "payloadBytes"}`,
keyed by the source key. Delivery is at least once: a batch that crashes between sending and
recording it in the journal sends its dead letters again; `source.partition`/`source.offset` identify
duplicates.
"""

from __future__ import annotations

from collections.abc import Sequence

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from userpipeline.jobs.stream.transform import DLQ_PAYLOAD_BYTES, REJECTED

SINK_REJECTED = "sink_rejected"


def dead_letter_topic(topic: str) -> str:
    return f"{topic}.dlq"


def _letter(reason: Column, detail: Column, partition: Column, offset: Column, timestamp_ms: Column, payload: Column,
            payload_bytes: Column) -> Column:
    source = F.struct(F.col("topic"), partition.alias("partition"), offset.alias("offset"), timestamp_ms.alias("timestamp"))
    record = F.struct(reason.alias("reason"), detail.alias("detail"), source.alias("source"), payload.alias("payload"),
                      payload_bytes.alias("payloadBytes"))
    return F.to_json(record, {"ignoreNullFields": "false"}).alias("value")


def dead_letters(classified: DataFrame) -> DataFrame:
    """(key, value) rows of the dead-letter records of a classified batch."""
    value = _letter(F.col("reason"), F.col("detail"), F.col("source_partition"), F.col("source_offset"),
                    F.col("event_time_ms"), F.col("payload"), F.col("payload_bytes"))
    return classified.where(F.col("status") == REJECTED).select("key", value)


def sink_rejected_letters(raw: DataFrame, rejected: Sequence[tuple[int, int, str]]) -> DataFrame:
    """(key, value) rows of `sink_rejected` records for the (partition, offset, detail) of the raw Kafka batch."""
    wanted = raw.sparkSession.createDataFrame(list(rejected), "partition int, offset long, detail string")
    rows = raw.join(F.broadcast(wanted), ["partition", "offset"])
    value = _letter(F.lit(SINK_REJECTED), F.col("detail"), F.col("partition"), F.col("offset"),
                    F.unix_millis("timestamp"), F.substring("value", 1, DLQ_PAYLOAD_BYTES).cast("string"),
                    F.octet_length("value"))
    return rows.select("key", value)


def send(frame: DataFrame, bootstrap: str, topic: str) -> None:
    (frame.write.format("kafka")
     .option("kafka.bootstrap.servers", bootstrap)
     .option("kafka.acks", "all")
     .option("kafka.enable.idempotence", "true")
     .option("kafka.compression.type", "lz4")
     .option("topic", topic)
     .save())
