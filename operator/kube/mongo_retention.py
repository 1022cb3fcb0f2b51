"""Aggregate retention in MongoDB: the document `{_id: "retention", aggregatesSeconds}` in `settings`.

FerretDB (local and tests) has no TTL indexes, so no TTL index is created anywhere: the purge job reads
this document and deletes expired aggregates itself, the same against MongoDB and FerretDB.
"""

from __future__ import annotations

import threading

from pymongo import MongoClient
from pymongo.errors import PyMongoError
from pymongo.uri_parser import parse_uri

from userpipeline.operator.kube.parts import Context, Outcome, failed
from userpipeline.operator.kube.secrets import SecretProblem, read_secret
from userpipeline.operator.retention import RETENTION_DOCUMENT as DOCUMENT_ID
from userpipeline.operator.retention import SETTINGS_COLLECTION as COLLECTION
from userpipeline.operator.retention import apply_aggregate_retention
from userpipeline.operator.spec import parse_duration

CONDITION = "MongoRetention"


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


def _where(uri: str) -> str:
    """Hosts only: the URI may hold a password."""
    try:
        return ",".join(f"{host}:{port}" for host, port in parse_uri(uri)["nodelist"])
    except Exception:  # noqa: BLE001 - an unparsable URI is reported, never echoed
        return "<unparsable uri>"


def reconcile(ctx: Context) -> Outcome:
    try:
        secret = read_secret(ctx.kube, ctx.namespace, ctx.settings.mongo_secret, ("uri",))
    except SecretProblem as problem:
        return failed(CONDITION, problem.reason, problem.message)
    uri, database = secret["uri"], secret.get("database", "userpipeline")
    desired = parse_duration(ctx.spec.retention.aggregates)
    try:
        db = CLIENTS.get(uri, ctx.settings.store_timeout_seconds)[database]
        change = apply_aggregate_retention(db, desired, f"{ctx.namespace}/{ctx.name}")
    except (PyMongoError, ValueError) as exc:
        CLIENTS.drop(uri)
        return failed(CONDITION, "Unreachable", f"MongoDB at {_where(uri)}: {type(exc).__name__}: {str(exc)[:300]}")
    return Outcome(CONDITION, True, "Applied", f"{database}.{COLLECTION} aggregatesSeconds {desired}",
                   {"aggregatesRetentionSeconds": desired}, [change] if change else [])
