"""Spark: a Structured Streaming query reads a Kafka topic through the connector jars and writes results."""

import json
import uuid

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic
from pyspark.sql import functions as F


def test_structured_streaming_reads_kafka(kafka, spark, tmp_path):
    topic = f"spark-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": kafka.bootstrap})  # must outlive the future it returns
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])[topic].result(timeout=30)
    producer = Producer({"bootstrap.servers": kafka.bootstrap})
    for i in range(50):
        producer.produce(topic, key=str(i), value=json.dumps({"nat": "FR" if i % 2 else "DE", "age": i}))
    assert producer.flush(30) == 0

    # The test process's one SparkSession (tests/harness/services.py), built with the connector jars.
    query = None
    try:
        stream = (spark.readStream.format("kafka")
                  .option("kafka.bootstrap.servers", kafka.bootstrap)
                  .option("subscribe", topic)
                  .option("startingOffsets", "earliest")
                  .load()
                  .select(F.from_json(F.col("value").cast("string"), "nat STRING, age INT").alias("u"))
                  .select("u.*"))
        out = tmp_path / "out"
        query = (stream.writeStream.format("parquet").option("path", str(out))
                 .option("checkpointLocation", str(tmp_path / "checkpoint"))
                 .trigger(availableNow=True).start())
        query.awaitTermination(180)
        assert query.exception() is None
        rows = spark.read.parquet(str(out)).groupBy("nat").agg(F.count("*").alias("n"), F.sum("age").alias("s"))
        assert sorted((r.nat, r.n, r.s) for r in rows.collect()) == [("DE", 25, 600), ("FR", 25, 625)]
    finally:
        if query is not None and query.isActive:
            query.stop()
