"""The dead-letter topic `<raw topic>.dlq`: one JSON record per rejected input, written by Spark's Kafka sink.

Record (docs/data-contract.md): `{"reason", "detail", "source": {"topic", "partition", "offset",
"timestamp" (ms since the epoch)}, "payload" (the value as UTF-8 text, cut at 64 KiB), "payloadBytes"}`,
keyed by the source key. Delivery is at least once: a batch that crashes between sending and
recording it in the journal sends its dead letters again; `source.partition`/`source.offset` identify
duplicates.
"""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from userpipeline.jobs.stream.transform import REJECTED


def dead_letter_topic(topic: str) -> str:
    return f"{topic}.dlq"


def dead_letters(classified: DataFrame) -> DataFrame:
    """(key, value) rows of the dead-letter records of a classified batch."""
    source = F.struct(F.col("topic"), F.col("source_partition").alias("partition"),
                      F.col("source_offset").alias("offset"), F.col("event_time_ms").alias("timestamp"))
    record = F.struct("reason", "detail", source.alias("source"), "payload", F.col("payload_bytes").alias("payloadBytes"))
    return classified.where(F.col("status") == REJECTED).select("key", F.to_json(record, {"ignoreNullFields": "false"}).alias("value"))


def send(frame: DataFrame, bootstrap: str, topic: str) -> None:
    (frame.write.format("kafka")
     .option("kafka.bootstrap.servers", bootstrap)
     .option("kafka.acks", "all")
     .option("kafka.enable.idempotence", "true")
     .option("kafka.compression.type", "lz4")
     .option("topic", topic)
     .save())
