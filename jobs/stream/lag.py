"""How far the stream is behind the raw topic: latest offsets minus the positions it has processed."""

from __future__ import annotations

import structlog
from confluent_kafka import TopicCollection, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

log = structlog.get_logger()


class LagProbe:
    """Positions come from the batches this process handled; partitions it has not seen yet count as 0."""

    def __init__(self, bootstrap: str, topic: str, timeout: float = 5.0):
        self.topic = topic
        self.timeout = timeout
        self.positions: dict[int, int] = {}
        self._config = {"bootstrap.servers": bootstrap}
        self._admin: AdminClient | None = None

    def observe(self, partition: int, offset: int) -> None:
        if offset + 1 > self.positions.get(partition, -1):
            self.positions[partition] = offset + 1

    def _client(self) -> AdminClient:
        if self._admin is None:  # not `or`: an idle client is falsy (len() = 0 queued requests), and a new
            self._admin = AdminClient(self._config)  # one waits up to seconds for its first broker connection
        return self._admin

    def topic_id(self) -> str:
        """The topic's id (a new one when the topic is deleted and created again); raises when Kafka does not answer."""
        try:
            futures = self._client().describe_topics(TopicCollection([self.topic]), request_timeout=self.timeout)
            return str(futures[self.topic].result(timeout=self.timeout).topic_id)
        except Exception:
            self._admin = None
            raise

    def lag(self) -> int | None:
        """Records not processed yet, or None when Kafka does not answer in time (never raises)."""
        if not self.positions:
            return None
        try:
            request = {TopicPartition(self.topic, p): OffsetSpec.latest() for p in self.positions}
            futures = self._client().list_offsets(request, request_timeout=self.timeout)
            latest = {tp.partition: future.result(timeout=self.timeout).offset for tp, future in futures.items()}
        except Exception as exc:  # a metric must not fail a batch
            # A fresh client next time: after a broker restart librdkafka keeps failing with
            # FENCED_LEADER_EPOCH on the cached leader epoch.
            self._admin = None
            log.warning("stream.lag_unavailable", error=str(exc)[:200])
            return None
        return sum(max(0, latest[p] - position) for p, position in self.positions.items())
