"""Kafka: produce and consume through a real KRaft broker."""

import uuid

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic


def test_produce_and_consume_round_trip(kafka):
    topic = f"smoke-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": kafka.bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])[topic].result(timeout=30)

    producer = Producer({"bootstrap.servers": kafka.bootstrap, "enable.idempotence": True, "acks": "all"})
    delivered = []
    for i in range(100):
        producer.produce(topic, key=f"k{i}", value=f"v{i}", on_delivery=lambda err, msg: delivered.append(err))
    assert producer.flush(30) == 0
    assert delivered == [None] * 100

    consumer = Consumer({"bootstrap.servers": kafka.bootstrap, "group.id": topic, "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    received = {}
    try:
        for _ in range(120):
            for msg in consumer.consume(num_messages=100, timeout=1):
                assert msg.error() is None
                received[msg.key().decode()] = msg.value().decode()
            if len(received) == 100:
                break
    finally:
        consumer.close()
    assert received == {f"k{i}": f"v{i}" for i in range(100)}
