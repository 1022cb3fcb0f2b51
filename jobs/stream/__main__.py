"""`python -m userpipeline.jobs.stream --spec FILE --checkpoint DIR`: run the streaming job until stopped.

Endpoints and the HMAC key come from the USERPIPELINE_* environment (jobs/endpoints.py); with
USERPIPELINE_MANAGE_TOPICS / USERPIPELINE_MANAGE_TABLE_OPTIONS false (Kubernetes) the job never creates or
alters topics, nor the profiles table's options (it creates a missing table, never alters it). SIGTERM or
Ctrl-C stops the query between batches; a SIGKILL is fine too: the next start resumes from the
checkpoint and the numbers stay exact.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Annotated, Optional

import typer
from pydantic import ValidationError

from userpipeline.jobs.endpoints import Endpoints
from userpipeline.jobs.logs import configure_logging

app = typer.Typer(add_completion=False, help="Stream users from Kafka into Cassandra and MongoDB as a UserPipeline YAML says.")


def _local_jars() -> list[str]:
    from userpipeline.operator.local.artifacts import load_artifacts

    return [str(path) for path in load_artifacts().spark_jars]


@app.command()
def main(
    spec: Annotated[Path, typer.Option(exists=True, dir_okay=False, help="UserPipeline YAML file.")],
    checkpoint: Annotated[Path, typer.Option(file_okay=False, help="Durable checkpoint directory (offsets only).")],
    master: Annotated[Optional[str], typer.Option(
        help="Spark master; local[N] adds the Kafka connector jars from the bootstrap manifest; empty leaves master "
             "and jars to spark-submit.")] = os.environ.get("SPARK_MASTER", "local[2]"),
    driver_memory: Annotated[str, typer.Option(help="Spark driver memory.")] = "1g",
    fail_on_data_loss: Annotated[bool, typer.Option(help="Stop when Kafka deleted offsets before they were processed.")] = True,
    verbose: Annotated[bool, typer.Option("--verbose", help="Debug logs.")] = False,
) -> None:
    configure_logging(verbose)
    import structlog

    from userpipeline.jobs.producer.publisher import ensure_topics
    from userpipeline.jobs.stream import job
    from userpipeline.jobs.stream.pseudonymize import MissingKeyError, Pseudonymizer
    from userpipeline.operator.spec.model import load_userpipeline

    log = structlog.get_logger()
    try:
        pipeline = load_userpipeline(spec)
        endpoints = Endpoints.from_env()
        Pseudonymizer.from_endpoints(endpoints)  # fail before Spark starts
    except (ValidationError, ValueError, OSError, MissingKeyError) as exc:
        typer.echo(f"cannot start the stream: {exc}\nfix the spec file or the USERPIPELINE_* environment and retry", err=True)
        raise typer.Exit(2) from exc
    settings = job.StreamSettings.from_spec(pipeline.spec, checkpoint.resolve(), fail_on_data_loss)
    if endpoints.manage_topics:
        ensure_topics(endpoints.kafka_bootstrap, pipeline.spec)
    else:
        log.info("stream.topics_not_managed", hint="the topics belong to another owner (Strimzi KafkaTopics)")
    local = bool(master) and master.startswith("local")
    spark = job.build_session(master or None, _local_jars() if local else [], driver_memory)
    query, processor = job.start(spark, settings, endpoints)
    stopping = False

    def stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        log.info("stream.stopping", signal=signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while query.isActive and not stopping:
        query.awaitTermination(1)
    if query.isActive:
        query.stop()
    processor.close()
    error = query.exception()
    spark.stop()
    if error is not None:
        log.error("stream.failed", error=type(error).__name__)
        typer.echo(f"the streaming query failed: {error.desc[:2000] if hasattr(error, 'desc') else error}\n"
                   "restart it: it resumes from the checkpoint", err=True)
        raise typer.Exit(1)


if __name__ == "__main__":
    app()
