"""The Spark Operator's `mainApplicationFile`: run the streaming job under spark-submit.

The operator (operator/kube/stream.py) starts the driver with `USERPIPELINE_CONFIG` (the pipeline YAML
mounted from its ConfigMap) and `USERPIPELINE_CHECKPOINT_DIR` (its checkpoint volume) in the
environment. This file turns them into the options of `python -m userpipeline.jobs.stream` and runs
that CLI. `--master ""` leaves master and jars to spark-submit (the Kafka source is in /opt/spark/jars).
The SparkApplication's `arguments` are passed on unchanged, so the CLI rejects what it does not know.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence

CONFIG_ENV = "USERPIPELINE_CONFIG"
CHECKPOINT_ENV = "USERPIPELINE_CHECKPOINT_DIR"
PROG = "userpipeline-stream"


def build_args(env: Mapping[str, str], extra: Sequence[str] = ()) -> list[str]:
    """The streaming CLI's argv for this environment, then `extra` (the application's arguments)."""
    missing = [name for name in (CONFIG_ENV, CHECKPOINT_ENV) if not env.get(name)]
    if missing:
        raise SystemExit(f"{PROG}: {' and '.join(missing)} not set; the operator sets them on the driver "
                         "(operator/kube/stream.py): set them to the pipeline YAML and the checkpoint directory")
    return ["--spec", env[CONFIG_ENV], "--checkpoint", env[CHECKPOINT_ENV], "--master", "", *extra]


def main() -> None:
    from userpipeline.jobs.stream.__main__ import app

    app(args=build_args(os.environ, sys.argv[1:]), prog_name=PROG)


if __name__ == "__main__":
    main()
