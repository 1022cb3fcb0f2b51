"""`python -m userpipeline.jobs.producer --spec FILE [--source synthetic|randomuser] [--count N] ...`"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer
from prometheus_client import start_http_server
from pydantic import ValidationError

from userpipeline.jobs.endpoints import Endpoints
from userpipeline.jobs.logs import configure_logging

app = typer.Typer(add_completion=False, help="Publish users to Kafka as described by a UserPipeline YAML file.")


class SourceChoice(str, Enum):
    synthetic = "synthetic"
    randomuser = "randomuser"


@app.command()
def main(
    spec: Annotated[Path, typer.Option(exists=True, dir_okay=False, help="UserPipeline YAML; rate and paused changes apply live.")],
    source: Annotated[Optional[SourceChoice], typer.Option(help="Overrides spec.source.type.")] = None,
    count: Annotated[Optional[int], typer.Option(min=0, help="Stop after this many acknowledged records (synthetic: indexes 0..N-1, across resumed runs).")] = None,
    metrics_port: Annotated[Optional[int], typer.Option(help="Serve Prometheus metrics on this port.")] = None,
    progress_file: Annotated[Optional[Path], typer.Option(help="JSON progress file (read by `userpipeline status`; synthetic runs resume from it).")] = None,
    acked_log: Annotated[Optional[Path], typer.Option(help="Append '<index>\\t<key>' per acknowledged record (test/ops tooling).")] = None,
    resume: Annotated[bool, typer.Option(help="Synthetic source: continue after the last acknowledged index in --progress-file.")] = True,
    stall_warning_after: Annotated[float, typer.Option(min=0.1, help="Warn when records wait this many seconds with no acknowledgement.")] = 15.0,
    stall_recovery_after: Annotated[float, typer.Option(min=1, help="Replace a Kafka client that reported no delivery for this many seconds while the cluster answers.")] = 45.0,
    workers: Annotated[int, typer.Option(min=0, max=64, envvar="USERPIPELINE_PRODUCER_WORKERS", help="Synthetic source: processes generating records beside the Kafka client (0: in its thread).")] = 1,
    verbose: Annotated[bool, typer.Option("--verbose", help="Debug logs.")] = False,
) -> None:
    configure_logging(verbose)
    from userpipeline.jobs.producer.runner import Options, Runner

    try:
        runner = Runner(
            Options(spec_path=spec, source=source.value if source else None, count=count,
                    progress_file=progress_file, acked_log=acked_log, resume=resume,
                    stall_warning_after=stall_warning_after, stall_recovery_after=stall_recovery_after, workers=workers),
            Endpoints.from_env(),
        )
    except (ValidationError, ValueError, OSError) as exc:
        typer.echo(f"cannot start the producer: {exc}\nfix the spec file or the USERPIPELINE_* environment and retry", err=True)
        raise typer.Exit(2) from exc
    if metrics_port is not None:
        start_http_server(metrics_port)
    runner.install_signal_handlers()
    raise typer.Exit(runner.run())


if __name__ == "__main__":
    app()
