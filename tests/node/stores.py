"""The harness's stores, reachable from the node's pods as the chart's external stores.

Each store listens on the host's 127.0.0.1; a forwarder (Node.expose_host_port) makes it answer at the node's
address inside the node's network namespace, where pods reach it. Kafka tells its clients where to connect,
so it gets a second listener advertised at the node's address (pods) beside the one at 127.0.0.1 (tests).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from userpipeline.operator.local.services import KafkaService
from userpipeline.operator.local.services.ports import free_port


class NodeKafka(KafkaService):
    """Kafka with a listener `NODE` on 127.0.0.1:<node port>, advertised as <node address>:<node port>."""

    def __init__(self, home: Path, node_address: str):
        super().__init__(home, {"broker": free_port(), "controller": free_port(), "node": free_port()})
        self.node_address = node_address

    @property
    def node_bootstrap(self) -> str:
        return f"{self.node_address}:{self.ports['node']}"

    def properties(self) -> str:
        settings = dict(line.split("=", 1) for line in super().properties().splitlines() if "=" in line)
        broker, controller, node = self.ports["broker"], self.ports["controller"], self.ports["node"]
        settings.update({
            "listeners": f"PLAINTEXT://127.0.0.1:{broker},NODE://127.0.0.1:{node},CONTROLLER://127.0.0.1:{controller}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{broker},NODE://{self.node_bootstrap}",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,NODE:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "inter.broker.listener.name": "PLAINTEXT",
        })
        return "".join(f"{key}={value}\n" for key, value in settings.items())


@dataclass(frozen=True)
class ExternalStores:
    """Where the pods find the stores (the chart's *.external values) and where the tests do."""

    kafka_bootstrap: str       # for pods
    cassandra_hosts: str       # for pods
    mongo_uri: str             # for pods
    host_kafka: str            # for the tests
    keyspace: str
    database: str
