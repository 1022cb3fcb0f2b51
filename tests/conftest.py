"""Shared fixtures: real Kafka, Cassandra, FerretDB (MongoDB wire protocol) and Spark's Kafka jars."""

import os
import sys

# Child processes started by tests must not see the clone root on sys.path either.
os.environ["PYTHONSAFEPATH"] = "1"

from userpipeline.operator.local.artifacts import load_artifacts

from harness.browser import browser  # noqa: F401
from harness.services import cassandra, endpoints, kafka, mongo, services_home, spark_jars  # noqa: F401


def pytest_configure(config):
    # PySpark and every JVM the tests start use the Java 17 the bootstrap found.
    os.environ["JAVA_HOME"] = str(load_artifacts().java_home)
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("USERPIPELINE_LOG_FORMAT", "json")
