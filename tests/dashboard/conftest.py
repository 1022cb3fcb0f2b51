"""Fixtures for the dashboard tests: a database per test on the shared FerretDB (`mongo`), the dashboard
served by its real CLI (gunicorn), and a headless Chromium."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from pymongo.database import Database

from dashboard.dashboard_support import wait_for
from userpipeline.operator.local.services.ports import free_port

@pytest.fixture
def store_db(mongo: Any) -> Iterator[Database[dict[str, Any]]]:
    """A fresh database per test, so tests never see each other's aggregates."""
    name = f"dash_{uuid.uuid4().hex[:10]}"
    client = mongo.client()
    yield client[name]
    client.drop_database(name)
    client.close()


@dataclass
class Dashboard:
    base: str  # page URL, ends with the path prefix
    root: str  # scheme://host:port/
    process: subprocess.Popen[bytes]


@pytest.fixture
def serve_dashboard(tmp_path: Path) -> Iterator[Callable[..., Dashboard]]:
    """Start `python -m userpipeline.dashboard` (gunicorn) on a free port with the given MongoDB and settings."""
    started: list[Dashboard] = []

    def start(mongo_uri: str, database: str, *, prefix: str = "/", refresh_seconds: int = 1, k: int = 5) -> Dashboard:
        port = free_port()
        env = {**os.environ, "USERPIPELINE_MONGO_URI": mongo_uri, "USERPIPELINE_MONGO_DATABASE": database,
               "USERPIPELINE_DASHBOARD_REFRESH_SECONDS": str(refresh_seconds),
               "USERPIPELINE_DASHBOARD_K_ANONYMITY": str(k), "USERPIPELINE_DASHBOARD_PATH_PREFIX": prefix,
               "USERPIPELINE_DASHBOARD_MONGO_TIMEOUT_MS": "800"}
        log = (tmp_path / f"dashboard-{port}.log").open("wb")
        process = subprocess.Popen([sys.executable, "-m", "userpipeline.dashboard", "--port", str(port)],
                                   env=env, stdout=log, stderr=subprocess.STDOUT)
        root = f"http://127.0.0.1:{port}/"
        dashboard = Dashboard(root.rstrip("/") + prefix, root, process)
        started.append(dashboard)

        def up() -> bool:
            assert process.poll() is None, f"the dashboard exited, see {log.name}:\n{Path(log.name).read_text()[-2000:]}"
            return httpx.get(f"{root}healthz", timeout=5).status_code == 200

        wait_for(up, 60, f"the dashboard on port {port} (log: {log.name})")
        return dashboard

    yield start
    for dashboard in started:
        dashboard.process.terminate()
        dashboard.process.wait(15)
