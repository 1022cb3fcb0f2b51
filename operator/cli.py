"""`userpipeline`: run the pipeline on this machine (up, down, status, logs, reset), purge, erase, register."""

from __future__ import annotations

import logging
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
import yaml
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from userpipeline.operator.local.artifacts import ArtifactsMissing
from userpipeline.jobs.logs import configure_logging
from userpipeline.operator.local.platform import LocalPlatform, default_state_dir
from userpipeline.operator.local.services import Service, ServiceError, ServiceStatus
from userpipeline.operator.spec.problems import describe as describe_spec_problem

app = typer.Typer(help="Run the userpipeline locally: real Kafka, Cassandra, FerretDB and Spark.", no_args_is_help=True)
console = Console()
err = Console(stderr=True)

StateDir = Annotated[Path, typer.Option("--state-dir", "-s", help="Where data, logs and pids live.", envvar="USERPIPELINE_STATE_DIR")]


def _platform(state_dir: Path | None, extra: list[str] | None = None, **ports: int | None) -> LocalPlatform:
    overrides: dict[str, dict[str, int]] = {}
    for key, value in ports.items():
        if value:
            service, role = key.split("_", 1)
            overrides.setdefault(service, {})[role] = value
    for item in extra or []:
        name, _, value = item.partition("=")
        service, _, role = name.partition(".")
        if not (service and role and value.isdigit()):
            _fail(f"--port {item!r}: write SERVICE.ROLE=PORT, e.g. --port dashboard.http=8051")
        overrides.setdefault(service, {})[role] = int(value)
    return LocalPlatform(state_dir or default_state_dir(), overrides)


def _service(state_dir: Path | None, name: str) -> Service:
    try:
        return _platform(state_dir).by_name(name)
    except KeyError as exc:
        _fail(str(exc.args[0]))
        raise


def _fail(message: str) -> None:
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(1)


@app.callback()
def main(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logs.")] = False) -> None:
    configure_logging(verbose=verbose, level=None if verbose else logging.WARNING)


@app.command()
def up(
    spec: Annotated[Path | None, typer.Option("--file", "-f", help="UserPipeline YAML to run.")] = None,
    state_dir: StateDir = None,
    kafka_broker: Annotated[int | None, typer.Option("--kafka-port")] = None,
    kafka_controller: Annotated[int | None, typer.Option("--kafka-controller-port")] = None,
    cassandra_cql: Annotated[int | None, typer.Option("--cassandra-port")] = None,
    cassandra_storage: Annotated[int | None, typer.Option("--cassandra-storage-port")] = None,
    ferretdb_mongo: Annotated[int | None, typer.Option("--ferretdb-port")] = None,
    port: Annotated[list[str] | None, typer.Option("--port", help="Any other port: SERVICE.ROLE=PORT, e.g. dashboard.http=8051.")] = None,
    supervise: Annotated[bool, typer.Option("--supervise/--no-supervise", help="Keep a supervisor running that restarts any service that dies (with backoff).")] = True,
) -> None:
    """Start every service that is not running and wait until all are healthy.

    Ports given once are remembered in the state directory. A supervisor then restarts whatever dies.
    """
    platform = _platform(state_dir, port, kafka_broker=kafka_broker, kafka_controller=kafka_controller,
                         cassandra_cql=cassandra_cql, cassandra_storage=cassandra_storage,
                         ferretdb_mongo=ferretdb_mongo)
    try:
        if spec is not None:
            platform.use_spec(spec)
        with console.status("starting") as status:
            timings = platform.up(progress=status.update, supervise=supervise)
    except (ServiceError, ArtifactsMissing) as exc:
        _fail(str(exc))
    except (ValidationError, yaml.YAMLError, OSError) as exc:
        _fail(describe_spec_problem(spec, exc))
    for name, seconds in timings.items():
        console.print(f"[green]✓[/] {name} healthy ({seconds:.1f}s)")
    _print_status(platform.status(), platform)
    if platform.spec_path():
        console.print(f"dashboard: [bold]http://localhost:{platform.apps()[-1].ports['http']}/[/]   "
                      f"progress: `userpipeline status --watch`   spec: {platform.spec_path()} (edits apply live)")


@app.command()
def down(state_dir: StateDir = None) -> None:
    """Stop every service gracefully; data stays in the state directory."""
    platform = _platform(state_dir)
    with console.status("stopping") as status:
        platform.down(progress=status.update)
    console.print(f"stopped; data kept in {platform.state_dir}")


@app.command()
def status(
    state_dir: StateDir = None,
    watch: Annotated[bool, typer.Option("--watch", "-w", help="Refresh every 2 s until Ctrl-C.")] = False,
) -> None:
    """Show each service's pid, ports, health, memory and restarts, and the pipeline's progress.

    Exit 1 if any service is down, the stream is stalled (a batch keeps failing, or no batch completes while
    records wait) or the producer's records get no acknowledgement.
    """
    platform = _platform(state_dir)
    if watch:
        _watch(platform)
        return
    statuses = platform.status()
    stalls = _stalls(platform)
    _print_status(statuses, platform, stalls)
    failed = False
    if not all(s.healthy for s in statuses):
        down_names = ", ".join(s.name for s in statuses if not s.healthy)
        err.print(f"[yellow]not healthy:[/] {down_names}; `userpipeline up` (re)starts them")
        failed = True
    for name, reason in stalls.items():
        err.print(f"[red]{name} stalled:[/] {reason}; see `userpipeline logs {name}`", highlight=False, soft_wrap=True)
        failed = True
    if failed:
        raise typer.Exit(1)


# Records waiting this long with no acknowledgement at all make the producer count as stalled.
PRODUCER_STALL_SECONDS = 60.0


def _stalls(platform: LocalPlatform) -> dict[str, str]:
    """Parts that run but make no progress: the stream (its health verdict) and the producer (no acks)."""
    stalls = {}
    verdict = platform.stream_health()
    if verdict is not None and verdict.stalled:
        stalls["stream"] = verdict.reason
    if platform.spec_path() is not None:
        progress = platform.progress()
        waiting = progress.get("secondsWithoutAcks") or 0
        if isinstance(waiting, (int, float)) and waiting >= PRODUCER_STALL_SECONDS:
            stalls["producer"] = (f"{progress.get('outstanding', 0)} records wait with no acknowledgement from Kafka "
                                  f"for {waiting:.0f}s")
    return stalls


@app.command()
def logs(
    service: Annotated[str, typer.Argument(help="kafka, cassandra, ferretdb, ...")],
    lines: Annotated[int, typer.Option("--lines", "-n")] = 50,
    follow: Annotated[bool, typer.Option("--follow", "-F")] = False,
    state_dir: StateDir = None,
) -> None:
    """Print the end of a service's log."""
    target = _service(state_dir, service)
    sys.stdout.write(target.log_tail(lines) + "\n")
    if follow:
        _follow(target.log_file)


def _follow(path: Path) -> None:
    with open(path, "rb") as f:
        f.seek(0, 2)
        try:
            while True:
                chunk = f.read()
                if chunk:
                    sys.stdout.write(chunk.decode("utf-8", "replace"))
                    sys.stdout.flush()
                else:
                    time.sleep(0.5)
        except KeyboardInterrupt:
            pass


@app.command()
def reset(
    service: Annotated[str, typer.Argument(help="The service whose data to delete.")],
    yes: Annotated[bool, typer.Option("--yes", help="Confirm the data loss.")] = False,
    state_dir: StateDir = None,
) -> None:
    """Delete one service's data (after stopping it), e.g. when it is corrupt."""
    target = _service(state_dir, service)
    if not yes:
        _fail(f"this deletes {target.data_dir}; run again with --yes to confirm")
    _platform(state_dir).supervisor.stop()  # it would restart the service while its data is deleted
    target.stop()
    shutil.rmtree(target.data_dir, ignore_errors=True)
    console.print(f"deleted {target.data_dir}; `userpipeline up` starts {service} afresh (and the supervisor again)")


def _watch(platform: LocalPlatform) -> None:
    from rich.live import Live

    try:
        with Live(_status_table(platform.status(), platform, _stalls(platform)), console=console,
                  refresh_per_second=1) as live:
            while True:
                time.sleep(2)
                live.update(_status_table(platform.status(), platform, _stalls(platform)))
    except KeyboardInterrupt:
        pass


@app.command()
def purge(spec: Annotated[Path, typer.Option("--file", "-f", help="UserPipeline YAML (its retention policy).")]) -> None:
    """Delete empty aggregate groups older than the retention policy (MongoDB from USERPIPELINE_MONGO_URI)."""
    from pymongo import MongoClient
    from pymongo.errors import PyMongoError

    from userpipeline.jobs.endpoints import Endpoints
    from userpipeline.jobs.purge.purge import purge as run_purge
    from userpipeline.operator.spec import load_userpipeline

    try:
        pipeline = load_userpipeline(spec)
    except (ValidationError, yaml.YAMLError, OSError) as exc:
        _fail(describe_spec_problem(spec, exc))
    endpoints = Endpoints.from_env()
    try:
        with MongoClient(endpoints.mongo_uri.get_secret_value(), serverSelectionTimeoutMS=10000) as client:
            result = run_purge(client[endpoints.mongo_database], pipeline.spec)
    except PyMongoError as exc:
        _fail(f"MongoDB unreachable ({type(exc).__name__}); check USERPIPELINE_MONGO_URI and retry")
    console.print(f"purged {result.aggregates_deleted} empty aggregate documents last updated before {result.cutoff:%Y-%m-%d %H:%M} UTC "
                  f"(audit record {result.audit_id})", soft_wrap=True, highlight=False)


@app.command()
def erase(
    spec: Annotated[Path | None, typer.Option("--file", "-f", help="UserPipeline YAML (default: the one `up -f` runs).")] = None,
    email: Annotated[list[str] | None, typer.Option("--email", help="A person's email (repeatable).")] = None,
    user_id: Annotated[list[str] | None, typer.Option("--user-id", help="A person's login.uuid (repeatable).")] = None,
    from_file: Annotated[Path | None, typer.Option("--from-file", help="One email or user id per line.")] = None,
    wait: Annotated[float, typer.Option("--wait", help="Seconds to wait for the stream's batch in flight.")] = 120.0,
    state_dir: StateDir = None,
) -> None:
    """Right to erasure: delete people from Cassandra, subtract them from the aggregates, keep them out for good.

    Records keyed hashes (never the values) in the erasure ledger, which the stream consults: neither a
    re-send nor a replay brings them back. Prints a receipt without personal data (docs/privacy.md).
    Endpoints and key come from USERPIPELINE_* (as for the stream), else from the local state directory.
    """
    from cassandra import DriverException
    from cassandra.cluster import NoHostAvailable, OperationTimedOut
    from pymongo import MongoClient
    from pymongo.errors import PyMongoError

    from userpipeline.jobs.endpoints import Endpoints
    from userpipeline.jobs.erasure.erase import UUID, Eraser, ErasureError, Profiles, Request, parse_subjects
    from userpipeline.jobs.stream.pseudonymize import KeyRingError, MissingKeyError, Pseudonymizer
    from userpipeline.operator.spec import load_userpipeline

    spec = spec or _platform(state_dir).spec_path()
    if spec is None:
        _fail("no spec: give one with -f FILE (or start the pipeline with `userpipeline up -f FILE`)")
    try:
        pipeline = load_userpipeline(spec)
        extra = parse_subjects(from_file.read_text(encoding="utf-8").splitlines()) if from_file else Request()
        request = Request(tuple(user_id or ()) + extra.user_ids, tuple(email or ()) + extra.emails)
        bad = [i for i, u in enumerate(request.user_ids, 1) if not UUID.match(u.strip())]
        if bad:
            _fail(f"user id number {bad[0]} is not a UUID (login.uuid); fix it and run again")
        if request.subjects == 0:
            _fail("nobody to erase: give --email, --user-id or --from-file")
        endpoints = Endpoints.from_env() if "USERPIPELINE_HMAC_KEY" in os.environ else _local_endpoints(state_dir)
        pseudonymizer = Pseudonymizer.from_endpoints(endpoints, tuple(f.value for f in pipeline.spec.privacy.pseudonymize))
    except (ValidationError, yaml.YAMLError) as exc:
        _fail(describe_spec_problem(spec, exc))
    except (ErasureError, MissingKeyError, KeyRingError, OSError) as exc:
        _fail(str(exc))
    try:
        profiles = Profiles(endpoints, pseudonymizer)
        try:
            with MongoClient(endpoints.mongo_uri.get_secret_value(), serverSelectionTimeoutMS=10000) as client:
                receipt = Eraser(client[endpoints.mongo_database], profiles, pseudonymizer, wait).erase(request)
        finally:
            profiles.close()
    except ErasureError as exc:
        _fail(str(exc))
    except PyMongoError as exc:
        _fail(f"MongoDB failed ({type(exc).__name__}); check USERPIPELINE_MONGO_URI and run erase again (it resumes)")
    except (DriverException, NoHostAvailable, OperationTimedOut) as exc:
        _fail(f"Cassandra failed ({type(exc).__name__}): erasure reads and deletes at consistency ALL, every replica "
              "must answer; check USERPIPELINE_CASSANDRA_HOSTS and the nodes, then run erase again (it resumes)")
    console.print(receipt.text(), soft_wrap=True, highlight=False)


def _local_endpoints(state_dir: Path | None):
    """The local pipeline's endpoints and key (never a new key: that would match nobody)."""
    platform = _platform(state_dir)
    if not (platform.state_dir / "secrets" / "hmac.key").exists():
        _fail(f"no HMAC key in {platform.state_dir}: set USERPIPELINE_HMAC_KEY (and USERPIPELINE_HMAC_KEY_ID) as the "
              "stream has them, or give the state directory of `userpipeline up` with -s")
    return platform.endpoints()


@app.command("rotate-key")
def rotate_key(state_dir: StateDir = None) -> None:
    """Rotate the local pseudonymisation key (docs/privacy.md): new records get HMACs under a new key and key id;
    the old key is kept as a retired key, so rows and erasure-ledger entries made under it stay matchable.

    A running stream is restarted with the new key ring; prints key ids only, never a key.
    """
    platform = _platform(state_dir)
    if not (platform.state_dir / "secrets" / "hmac.key").exists():
        _fail(f"no HMAC key in {platform.state_dir} yet: `userpipeline up` makes one (give the state directory with -s)")
    stream = next((app for app in platform.apps() if app.name == "stream"), None)
    running = stream is not None and stream.pid() is not None
    rotation = platform.rotate_key()
    console.print(f"new key id {rotation.active_id}; retired {rotation.retired_id} "
                  f"(retired keys kept: {', '.join(rotation.retired_ids)})", soft_wrap=True, highlight=False)
    if not running:
        console.print("the stream is not running: it uses the new key when it starts")
        return
    supervised = platform.supervisor.pid() is not None
    platform.supervisor.stop()  # it would restart the stream meanwhile
    stream.stop()
    try:
        with console.status("restarting the stream with the new key") as status:
            platform.up(progress=status.update, supervise=supervised)
    except ServiceError as exc:
        _fail(f"{exc} (the new key is in place; `userpipeline up` starts the stream with it)")
    console.print("the stream runs with the new key")


@app.command()
def register(
    spec: Annotated[Path | None, typer.Option("--file", "-f", help="UserPipeline YAML (default: the one `up -f` runs).")] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write register.yaml and register.md into this folder.")] = None,
    output_format: Annotated[str, typer.Option("--format", help="What to print without --out: markdown or yaml.")] = "markdown",
    state_dir: StateDir = None,
) -> None:
    """Generate the GDPR Art. 30 record of processing (YAML and Markdown) from the pipeline's spec.

    On Kubernetes: `kubectl get upl NAME -o yaml > p.yaml; userpipeline register -f p.yaml`.
    """
    from userpipeline.operator import register as art30
    from userpipeline.operator.spec import load_userpipeline

    if output_format not in ("markdown", "yaml"):
        _fail(f"--format {output_format!r}: write markdown or yaml")
    spec = spec or _platform(state_dir).spec_path()
    if spec is None:
        _fail("no spec: give one with -f FILE (or start the pipeline with `userpipeline up -f FILE`)")
    try:
        document = art30.build(load_userpipeline(spec))
    except (ValidationError, yaml.YAMLError, OSError) as exc:
        _fail(describe_spec_problem(spec, exc))
    if out is None:
        sys.stdout.write(art30.to_yaml(document) if output_format == "yaml" else art30.to_markdown(document))
        return
    out.mkdir(parents=True, exist_ok=True)
    (out / "register.yaml").write_text(art30.to_yaml(document), encoding="utf-8")
    (out / "register.md").write_text(art30.to_markdown(document), encoding="utf-8")
    console.print(f"wrote {out / 'register.yaml'} and {out / 'register.md'} (from {spec})")


def _print_status(statuses: list[ServiceStatus], platform: LocalPlatform, stalls: dict[str, str] | None = None) -> None:
    console.print(_status_table(statuses, platform, stalls or {}))
    endpoints = platform.endpoints()
    console.print(f"kafka [bold]{endpoints.kafka_bootstrap}[/]  cassandra [bold]{endpoints.cassandra_hosts}[/]  "
                  f"mongodb [bold]{platform.ferretdb.uri}[/]", highlight=False)


def _status_table(statuses: list[ServiceStatus], platform: LocalPlatform, stalls: dict[str, str]) -> Table:
    progress = platform.progress()
    caption = "  ".join(f"{key} {value:.1f}" if isinstance(value, float) else f"{key} {value}"
                        for key, value in progress.items()) or None
    table = Table(title=f"userpipeline — {platform.state_dir}", caption=caption)
    for column in ("service", "state", "pid", "ports", "memory", "restarts"):
        table.add_column(column)
    restarts = platform.restarts()
    for s in statuses:
        colour = "green" if s.healthy else ("yellow" if s.running else "red")
        state = s.state
        if s.healthy and s.name in stalls:
            colour, state = "red", "stalled"
        ports = ", ".join(f"{role} {port}" for role, port in s.ports.items())
        memory = f"{s.rss_bytes / 2**20:.0f} MiB" if s.rss_bytes else "-"
        table.add_row(s.name, f"[{colour}]{state}[/]", str(s.pid or "-"), ports, memory, str(restarts.get(s.name, 0)))
    return table


if __name__ == "__main__":
    app()
