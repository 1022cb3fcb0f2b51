"""Real Kafka, Cassandra and FerretDB as local processes, shared by `userpipeline up` and the tests."""

from userpipeline.operator.local.services.base import Service, ServiceError, ServiceStatus
from userpipeline.operator.local.services.cassandra import CassandraService
from userpipeline.operator.local.services.ferretdb import FerretDBService
from userpipeline.operator.local.services.kafka import KafkaService

__all__ = ["CassandraService", "FerretDBService", "KafkaService", "Service", "ServiceError", "ServiceStatus"]
