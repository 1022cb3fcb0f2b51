"""Where the running components find each other: one typed place, read from the environment.

Locally `userpipeline up` sets these for the processes it starts; on Kubernetes the chart sets them
from Services and Secrets. Secrets (HMAC key, MongoDB password in the URI) never have defaults
that would be used in production: the local runner generates a key per state directory.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel, Field, SecretStr

if TYPE_CHECKING:
    from cassandra.cluster import Cluster


class Endpoints(BaseModel):
    kafka_bootstrap: str = Field("127.0.0.1:9092", description="Kafka bootstrap servers, host:port[,host:port]")
    cassandra_hosts: str = Field("127.0.0.1:9042", description="Cassandra contact points, host:port[,host:port]")
    cassandra_username: str = Field("", description="Empty: no authentication (local runs)")
    cassandra_password: SecretStr | None = None
    cassandra_keyspace: str = "userpipeline"
    cassandra_replication: str = Field("{'class': 'SimpleStrategy', 'replication_factor': 1}")
    mongo_uri: SecretStr = Field(SecretStr("mongodb://127.0.0.1:27017/"), description="MongoDB connection string")
    mongo_database: str = "userpipeline"
    hmac_key: SecretStr | None = Field(None, description="The active key of the PII pseudonymisation HMAC")
    hmac_key_id: str = Field("", description="The active key's id; empty: derived from the key (pseudonymize.key_id_of)")
    hmac_retired_keys: SecretStr | None = Field(
        None, description='Earlier keys, still matched (erasure, ledger), never used to write: JSON {"<key id>": "<key>"}')
    # Who owns the topics and the table options: the jobs themselves locally; on Kubernetes the operator
    # (Strimzi KafkaTopics, its CassandraTTL part), which sets both to false in the pods it makes.
    manage_topics: bool = Field(True, description="Create the raw and dead-letter topics and apply their configs")
    manage_table_options: bool = Field(True, description="Bring the profiles table's TTL to spec.retention.profiles")

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> "Endpoints":
        import os

        env = os.environ if environ is None else environ
        values = {name: env[f"USERPIPELINE_{name.upper()}"] for name in cls.model_fields if f"USERPIPELINE_{name.upper()}" in env}
        return cls(**values)

    def to_env(self) -> dict[str, str]:
        """The environment a child process needs to build the same Endpoints."""
        env = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if value is None:
                continue
            env[f"USERPIPELINE_{name.upper()}"] = value.get_secret_value() if isinstance(value, SecretStr) else str(value)
        return env

    def cassandra_cluster(self, **kwargs) -> "Cluster":
        """A driver Cluster for these contact points, authenticated when a username is set."""
        from cassandra.auth import PlainTextAuthProvider
        from cassandra.cluster import Cluster

        points = self.cassandra_contact_points()
        if self.cassandra_username:
            password = self.cassandra_password.get_secret_value() if self.cassandra_password else ""
            kwargs.setdefault("auth_provider", PlainTextAuthProvider(self.cassandra_username, password))
        return Cluster([host for host, _ in points], port=points[0][1], protocol_version=5, **kwargs)

    def cassandra_contact_points(self) -> list[tuple[str, int]]:
        return parse_hosts(self.cassandra_hosts, CASSANDRA_PORT)


CASSANDRA_PORT = 9042


def parse_hosts(text: str, default_port: int) -> list[tuple[str, int]]:
    """`host[:port][,host[:port]...]` -> [(host, port)]: the one rule for every hosts setting, wherever it comes from."""
    points = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        host, colon, port = item.rpartition(":")
        if not colon or not port.isdigit() or host.endswith(":"):  # no port (or a bare IPv6 address)
            host, port = item, str(default_port)
        points.append((host.strip("[]"), int(port)))
    if not points:
        raise ValueError(f"no hosts in {text!r}: write host[:port][,host[:port]...]")
    return points
