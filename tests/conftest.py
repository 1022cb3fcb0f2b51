"""Shared fixtures: real Kafka, Cassandra, FerretDB (MongoDB wire protocol) and Spark's Kafka jars."""

import os
import sys

# Child processes started by tests must not see the clone root on sys.path either.
os.environ["PYTHONSAFEPATH"] = "1"

from userpipeline.operator.local.artifacts import load_artifacts

from harness.browser import browser  # noqa: F401
from harness.services import cassandra, endpoints, kafka, mongo, services_home, spark, spark_jars  # noqa: F401


def pytest_configure(config):
    # PySpark and every JVM the tests start use the Java 17 the bootstrap found.
    os.environ["JAVA_HOME"] = str(load_artifacts().java_home)
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("USERPIPELINE_LOG_FORMAT", "json")


# Files that take minutes, longest first. Two workers take files in collection order, so starting these
# first keeps one long file from running alone at the end of the suite.
LONGEST_FIRST = (
    "node/test_real_node.py",
    "stream/test_stream_crash.py",
    "chart/test_install.py",
    "chaos/test_soak.py",
    "local/test_local_pipeline.py",
    "stream/test_stream_e2e.py",
)


def pytest_collection_modifyitems(config, items):
    def rank(item) -> int:
        path = item.path.as_posix()
        return next((i for i, name in enumerate(LONGEST_FIRST) if path.endswith(name)), len(LONGEST_FIRST))

    items.sort(key=rank)  # stable: the order inside each file and among the rest stays
