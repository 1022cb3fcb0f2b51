"""The job's SparkSession keeps what the launcher set (the SparkApplication's sparkConf, spark-submit --conf)
and picks its own defaults only for what the launcher left unset."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow

PRINT_PARTITIONS = ("from userpipeline.jobs.stream import job\n"
                    "spark = job.build_session('local[1]', [])\n"
                    "print('partitions=' + spark.conf.get('spark.sql.shuffle.partitions'))\n"
                    "spark.stop()\n")


def partitions_of_a_new_driver(cwd, submit_args: str | None) -> str:
    """The job's session in a fresh driver process: the first session of a Python process launches the JVM
    with its builder's settings as if spark-submit had set them, so a worker's earlier Spark tests must not
    decide what this one sees."""
    env = {k: v for k, v in os.environ.items() if k != "PYSPARK_SUBMIT_ARGS"}
    if submit_args:  # how spark-submit's --conf reaches a Python driver's JVM
        env["PYSPARK_SUBMIT_ARGS"] = submit_args
    done = subprocess.run([sys.executable, "-c", PRINT_PARTITIONS], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return next(line for line in done.stdout.splitlines() if line.startswith("partitions="))


def test_the_jobs_default_applies_when_the_launcher_set_none(tmp_path):
    assert partitions_of_a_new_driver(tmp_path, None) == "partitions=2"


def test_the_launchers_shuffle_partitions_win_over_the_jobs_default(tmp_path):
    assert partitions_of_a_new_driver(tmp_path, "--conf spark.sql.shuffle.partitions=7 pyspark-shell") == "partitions=7"
