"""FerretDB 1.x with its embedded SQLite backend: a MongoDB wire-compatible server."""

from __future__ import annotations

from pymongo import MongoClient

from userpipeline.operator.local.artifacts import load_artifacts
from userpipeline.operator.local.services.base import Service


class FerretDBService(Service):
    name = "ferretdb"
    default_ports = {"mongo": 27017}
    start_timeout = 30.0

    @property
    def uri(self) -> str:
        return f"mongodb://127.0.0.1:{self.ports['mongo']}/"

    def client(self, **kwargs) -> MongoClient:
        return MongoClient(self.uri, **{"serverSelectionTimeoutMS": 2000, **kwargs})

    def command(self) -> list[str]:
        return [str(load_artifacts().ferretdb), "--listen-addr", f"127.0.0.1:{self.ports['mongo']}",
                "--data-dir", str(self.data_dir)]

    def check_health(self) -> bool:
        try:
            with MongoClient(self.uri, serverSelectionTimeoutMS=1000, connectTimeoutMS=1000) as client:
                client.admin.command("ping")
            return True
        except Exception:
            return False
