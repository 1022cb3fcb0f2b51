"""One local SparkSession for every stream test (a JVM start costs ~10 s on 2 cores)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pyspark.sql import SparkSession

from userpipeline.jobs.stream import job


@pytest.fixture(scope="session")
def spark(spark_jars: list[str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[SparkSession]:
    session = job.build_session("local[2]", spark_jars, local_dir=str(tmp_path_factory.mktemp("spark-local")))
    yield session
    session.stop()
