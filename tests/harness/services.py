"""Session-wide real services for the tests: started once on free ports in temporary directories.

A service that fails to start fails the tests that need it, with the tail of its log.
"""

from __future__ import annotations

import atexit
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from userpipeline.jobs.endpoints import Endpoints
from userpipeline.operator.local.artifacts import load_artifacts
from userpipeline.operator.local.services import (
    CassandraService,
    FerretDBService,
    KafkaService,
    Service,
    ServiceError,
)
from userpipeline.operator.local.services.ports import free_port

TEST_HMAC_KEY = "test-only-hmac-key-0123456789abcdef"


def start_or_fail(service: Service) -> Service:
    atexit.register(service.kill)
    try:
        service.start()
    except ServiceError as exc:
        pytest.fail(f"{service.name} failed to start: {exc}\n--- last lines of its log ---\n{service.log_tail(40)}",
                    pytrace=False)
    return service


def running(service: Service) -> Iterator[Service]:
    start_or_fail(service)
    yield service
    service.stop(timeout=30)


@pytest.fixture(scope="session")
def services_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("services")


@pytest.fixture(scope="session")
def kafka(services_home: Path) -> Iterator[KafkaService]:
    yield from running(KafkaService(services_home / "kafka", {"broker": free_port(), "controller": free_port()}))


@pytest.fixture(scope="session")
def cassandra(services_home: Path) -> Iterator[CassandraService]:
    yield from running(CassandraService(services_home / "cassandra", {"cql": free_port(), "storage": free_port()}))


@pytest.fixture(scope="session")
def mongo(services_home: Path) -> Iterator[FerretDBService]:
    yield from running(FerretDBService(services_home / "ferretdb", {"mongo": free_port()}))


@pytest.fixture(scope="session")
def spark_jars() -> list[str]:
    return [str(path) for path in load_artifacts().spark_jars]


@pytest.fixture(scope="session")
def spark(spark_jars: list[str], tmp_path_factory: pytest.TempPathFactory):
    """The one SparkSession of a test process (a JVM start costs ~10 s on 2 cores). One per process is all
    PySpark allows: `getOrCreate` elsewhere returns this one, so no test may stop it or build its own."""
    from userpipeline.jobs.stream import job  # imports pyspark: only where a test needs Spark

    session = job.build_session("local[2]", spark_jars, local_dir=str(tmp_path_factory.mktemp("spark-local")))
    yield session
    session.stop()


@pytest.fixture(scope="session")
def endpoints(kafka: KafkaService, cassandra: CassandraService, mongo: FerretDBService) -> Endpoints:
    return Endpoints(
        kafka_bootstrap=kafka.bootstrap,
        cassandra_hosts=cassandra.contact,
        mongo_uri=SecretStr(mongo.uri),
        hmac_key=SecretStr(TEST_HMAC_KEY),
        hmac_key_id="test-1",
    )
