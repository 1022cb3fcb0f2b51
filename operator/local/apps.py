"""The pipeline's own processes as local services: producer, streaming job and dashboard.

Each runs the same entry point as its container on Kubernetes, with the same UserPipeline YAML
(the producer watches the file, so edits to the rate apply live) and the endpoints of the local
infrastructure in its environment.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import httpx

from userpipeline.jobs.endpoints import Endpoints
from userpipeline.operator.local.artifacts import load_artifacts
from userpipeline.operator.local.services.base import Service, read_json


class AppService(Service):
    """A Python process of this project, configured by a spec file and the endpoints."""

    module: str

    def __init__(self, home: Path, spec_path: Path, endpoints: Endpoints, ports: dict[str, int] | None = None):
        super().__init__(home, ports)
        self.spec_path = Path(spec_path).resolve()
        self.endpoints = endpoints

    def arguments(self) -> list[str]:
        return []

    def command(self) -> list[str]:
        return [sys.executable, "-P", "-m", self.module, "--spec", str(self.spec_path), *self.arguments()]

    def environment(self) -> dict[str, str]:
        return {
            **os.environ, **self.endpoints.to_env(),
            "JAVA_HOME": str(load_artifacts().java_home),
            "PYSPARK_PYTHON": sys.executable,
            "USERPIPELINE_LOG_FORMAT": "json",
            "PYTHONSAFEPATH": "1",
        }


class ProducerApp(AppService):
    name = "producer"
    module = "userpipeline.jobs.producer"
    default_ports = {"metrics": 9400}

    @property
    def progress_file(self) -> Path:
        return self.data_dir / "progress.json"

    def arguments(self) -> list[str]:
        return ["--progress-file", str(self.progress_file), "--metrics-port", str(self.ports["metrics"])]

    def check_health(self) -> bool:
        return self.pid() is not None and self.progress_file.exists()

    def progress(self) -> dict:
        return read_json(self.progress_file)


class StreamApp(AppService):
    name = "stream"
    module = "userpipeline.jobs.stream"
    default_ports = {"spark-ui": 4040}
    start_timeout = 480.0  # Spark takes minutes to start on a loaded 2-core machine

    @property
    def checkpoint(self) -> Path:
        return self.data_dir / "checkpoint"

    def arguments(self) -> list[str]:
        return ["--checkpoint", str(self.checkpoint)]

    def check_health(self) -> bool:
        # Spark writes the checkpoint's metadata file when the query has started.
        return self.pid() is not None and (self.checkpoint / "metadata").exists()

    def check_ports(self) -> None:
        """Spark picks the next free UI port itself; nothing to reserve."""


class ReconcilerApp(AppService):
    """Applies the file's retention policy to the stores and runs the purge (the local operator)."""

    name = "reconciler"
    module = "userpipeline.operator.local.reconciler"
    default_ports: dict[str, int] = {}

    @property
    def status_file(self) -> Path:
        return self.data_dir / "status.json"

    def arguments(self) -> list[str]:
        return ["--status-file", str(self.status_file)]

    def check_health(self) -> bool:
        return self.pid() is not None and self.status_file.exists()

    def conditions(self) -> dict:
        return read_json(self.status_file)


class DashboardApp(AppService):
    name = "dashboard"
    module = "userpipeline.dashboard"
    default_ports = {"http": 8050}
    start_timeout = 60.0

    @property
    def url(self) -> str:
        return f"http://localhost:{self.ports['http']}/"

    def arguments(self) -> list[str]:
        return ["--port", str(self.ports["http"])]

    def check_health(self) -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{self.ports['http']}/healthz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False
