"""`python -m userpipeline.dashboard --port 8050 [--spec FILE] [--dev]`: serve the dashboard.

gunicorn by default (threads, so a slow MongoDB never blocks the probes); `--dev` uses Dash's
development server with hot reload off.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from gunicorn.app.base import BaseApplication

from userpipeline.dashboard.settings import DashboardSettings
from userpipeline.jobs.logs import configure_logging

cli = typer.Typer(add_completion=False)


class _Gunicorn(BaseApplication):  # type: ignore[misc]
    def __init__(self, settings: DashboardSettings, options: dict[str, Any]) -> None:
        self._settings = settings
        self._options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self._options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        # Imported here so each worker creates its own MongoDB client after the fork.
        from userpipeline.dashboard.app import create_app

        return create_app(self._settings).server


@cli.command()
def serve(
    port: Annotated[int, typer.Option(envvar="USERPIPELINE_DASHBOARD_PORT", help="TCP port")] = 8050,
    host: Annotated[str, typer.Option(envvar="USERPIPELINE_DASHBOARD_HOST", help="Address to bind; 0.0.0.0 in a container")] = "127.0.0.1",
    spec: Annotated[Path | None, typer.Option(exists=True, dir_okay=False, help="UserPipeline YAML")] = None,
    workers: Annotated[int, typer.Option(min=1, max=16)] = 1,
    threads: Annotated[int, typer.Option(min=1, max=64)] = 4,
    dev: Annotated[bool, typer.Option(help="Dash development server instead of gunicorn")] = False,
) -> None:
    """Serve the dashboard (MongoDB from USERPIPELINE_MONGO_URI / USERPIPELINE_MONGO_DATABASE)."""
    configure_logging()
    settings = DashboardSettings.from_env(spec_file=spec)
    if dev:
        from userpipeline.dashboard.app import create_app

        create_app(settings).run(host=host, port=port, debug=False)
        return
    options = {"bind": f"{host}:{port}", "workers": workers, "threads": threads, "worker_class": "gthread",
               "timeout": 30, "graceful_timeout": 10, "errorlog": "-",
               # No control socket in $HOME: several instances may run side by side, and containers run read-only.
               "control_socket_disable": True}
    _Gunicorn(settings, options).run()


if __name__ == "__main__":
    cli()
