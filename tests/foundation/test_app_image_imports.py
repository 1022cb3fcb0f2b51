"""The application image has no pyspark (images/userpipeline/Dockerfile: only the Spark image runs Spark): what
it runs (the CLI with `purge`, `register`, `erase`; the producer; the dashboard; the operator and its config
sidecar) must import without it. The real-node test caught a purge that did not."""

from __future__ import annotations

import subprocess
import sys

APP_IMAGE_ENTRY_POINTS = (
    "userpipeline.operator.cli", "userpipeline.jobs.purge.purge", "userpipeline.jobs.producer.runner",
    "userpipeline.dashboard.wsgi", "userpipeline.operator.kube.main", "userpipeline.operator.kube.configsync",
    "userpipeline.jobs.erasure.erase",
)


def test_what_the_application_image_runs_imports_without_pyspark() -> None:
    code = ("import sys; sys.modules['pyspark'] = None\n"  # any `import pyspark...` now raises ImportError
            f"for name in {APP_IMAGE_ENTRY_POINTS!r}: __import__(name)\n")
    result = subprocess.run([sys.executable, "-P", "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
