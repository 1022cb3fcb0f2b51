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


def test_the_jobs_default_applies_when_the_launcher_set_none(spark):
    assert spark.conf.get("spark.sql.shuffle.partitions") == "2"


def test_the_launchers_shuffle_partitions_win_over_the_jobs_default(tmp_path):
    # PYSPARK_SUBMIT_ARGS is how spark-submit's --conf reaches a Python driver's JVM.
    env = {**os.environ, "PYSPARK_SUBMIT_ARGS": "--conf spark.sql.shuffle.partitions=7 pyspark-shell"}
    done = subprocess.run([sys.executable, "-c", PRINT_PARTITIONS], env=env, cwd=tmp_path, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "partitions=7" in done.stdout.splitlines()
