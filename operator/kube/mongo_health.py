"""MongoDB, reached with the pipeline's wiring: the aggregates' retention document (`settings`,
`_id: "retention"`, which the purge and the dashboard read, docs/data-contract.md), and what the stream's
health document (`pipeline_health`, `_id: "stream"`) says."""

from __future__ import annotations

import threading
from typing import Any

from pymongo import MongoClient
from pymongo.database import Database
from pymongo.errors import PyMongoError
from pymongo.uri_parser import parse_uri

from userpipeline.jobs.endpoints import Endpoints
from userpipeline.operator.kube.parts import Context, Outcome, failed
from userpipeline.operator.kube.wiring import MONGO, SecretProblem
from userpipeline.operator.retention import apply_aggregate_retention
from userpipeline.operator.spec import parse_duration

CONDITION = "MongoDB"
HEALTH_COLLECTION, HEALTH_ID = "pipeline_health", "stream"


class Clients:
    """One MongoClient per URI; dropped on failure so the next attempt starts with a fresh topology."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._clients: dict[str, MongoClient] = {}

    def get(self, uri: str, timeout: float) -> MongoClient:
        ms = int(timeout * 1000)
        with self._lock:
            if uri not in self._clients:
                self._clients[uri] = MongoClient(uri, serverSelectionTimeoutMS=ms, connectTimeoutMS=ms,
                                                 socketTimeoutMS=ms, appname="userpipeline-operator")
            return self._clients[uri]

    def drop(self, uri: str) -> None:
        with self._lock:
            client = self._clients.pop(uri, None)
        if client is not None:
            client.close()

    def close(self) -> None:
        for uri in list(self._clients):
            self.drop(uri)


CLIENTS = Clients()


def where(uri: str) -> str:
    """Hosts only: the URI may hold a password."""
    try:
        return ",".join(f"{host}:{port}" for host, port in parse_uri(uri)["nodelist"])
    except Exception:  # noqa: BLE001 - an unparsable URI is reported, never echoed
        return "<unparsable uri>"


def _database(ctx: Context) -> tuple[Endpoints, Database]:
    """The pipeline's database, reached once per reconcile: its parts share the answer (or the failure), so an
    unreachable MongoDB costs one timeout, not one per part. Raises SecretProblem, PyMongoError, ValueError."""
    if "mongo" not in ctx.memo:
        try:
            endpoints = ctx.settings.stores.endpoints(ctx.kube, ctx.namespace, MONGO)
            ctx.memo["mongo_uri"] = uri = endpoints.mongo_uri.get_secret_value()
            db = CLIENTS.get(uri, ctx.settings.store_timeout_seconds)[endpoints.mongo_database]
            try:
                db.command("ping")
            except (PyMongoError, ValueError):
                CLIENTS.drop(uri)
                raise
            ctx.memo["mongo"] = (endpoints, db)
        except (SecretProblem, PyMongoError, ValueError) as exc:
            ctx.memo["mongo"] = exc
    if isinstance(ctx.memo["mongo"], Exception):
        raise ctx.memo["mongo"]
    return ctx.memo["mongo"]


def stream_health_document(ctx: Context) -> dict[str, Any] | None:
    """The stream's health document (None before its first batch); raises PyMongoError, SecretProblem."""
    _, db = _database(ctx)
    return db[HEALTH_COLLECTION].find_one({"_id": HEALTH_ID})


def reconcile(ctx: Context) -> Outcome:
    seconds = parse_duration(ctx.spec.retention.aggregates)
    try:
        endpoints, db = _database(ctx)
        change = apply_aggregate_retention(db, seconds, f"{ctx.namespace}/{ctx.name}")
    except SecretProblem as problem:
        return failed(CONDITION, problem.reason, problem.message)
    except (PyMongoError, ValueError) as exc:
        uri = ctx.memo.get("mongo_uri", "")
        CLIENTS.drop(uri)
        return failed(CONDITION, "Unreachable", f"MongoDB at {where(uri)}: {type(exc).__name__}: {str(exc)[:300]}")
    uri = endpoints.mongo_uri.get_secret_value()
    return Outcome(CONDITION, True, "Applied",
                   f"{endpoints.mongo_database}.settings aggregatesSeconds {seconds} at {where(uri)}",
                   {"aggregatesRetentionSeconds": seconds}, [change] if change else [])
