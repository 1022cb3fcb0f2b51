"""`create_app(settings)`: the Dash app, its one refresh callback and the probe routes."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import structlog
from dash import Dash, Input, Output, no_update
from flask import jsonify

from userpipeline.dashboard.layout import build_layout, tiles
from userpipeline.dashboard.settings import DashboardSettings
from userpipeline.dashboard.store import AggregateStore, Reading, SnapshotPoller
from userpipeline.dashboard.viewmodel import GRAPH_IDS, View, build_view

log = structlog.get_logger("userpipeline.dashboard")
ASSETS = Path(__file__).parent / "assets"

OUTPUTS = [
    Output("status-pill", "children"),
    Output("status-pill", "className"),
    Output("status-banner", "children"),
    Output("status-banner", "className"),
    Output("last-updated", "children"),
    Output("headline", "children"),
    Output("health", "children"),
    *(Output(gid, "figure") for gid in GRAPH_IDS),
]
PILL_TEXT = {"ok": "Live", "empty": "Waiting for data", "down": "Database unreachable", "stalled": "Stream stalled",
             "failing": "Stream retrying"}


def view_of(reading: Reading, settings: DashboardSettings, now: datetime | None = None) -> View:
    """What the page shows for one read of the store."""
    if reading.error is not None:
        log.warning("mongo_unreachable", error=reading.error)
    return build_view(
        reading.snapshot, reading.error, k=settings.k_anonymity, top_domains=settings.top_domains,
        refresh_s=settings.refresh_seconds, now=now or datetime.now(timezone.utc), database=settings.mongo_database,
        checked_at=reading.at,
    )


def poller_for(store: AggregateStore, settings: DashboardSettings) -> SnapshotPoller:
    return SnapshotPoller(store, settings.refresh_seconds, top_domains=settings.top_domains, k=settings.k_anonymity)


def read_view(store: AggregateStore, settings: DashboardSettings, now: datetime | None = None) -> View:
    """A view from a read made now (the page itself takes the poller's latest read, see create_app)."""
    return view_of(poller_for(store, settings).read(), settings, now)


def view_outputs(view: View) -> tuple[Any, ...]:
    """The callback's return value; `no_update` keeps what the page already shows."""
    figures = [view.figures[gid] if view.figures else no_update for gid in GRAPH_IDS]
    return (
        PILL_TEXT[view.status],
        f"pill pill-{view.status}",
        view.message,
        f"banner banner-{view.status}",
        view.updated,
        tiles(view.headline) if view.headline is not None else no_update,
        tiles(view.health) if view.health is not None else no_update,
        *figures,
    )


def create_app(settings: DashboardSettings, store: AggregateStore | None = None) -> Dash:
    # A refresh slower than the interval is superseded by the next one and never shown, so a read
    # (and thus the "unreachable" message) must give up within half an interval.
    timeout_ms = min(settings.mongo_timeout_ms, settings.refresh_seconds * 500)
    store = store or AggregateStore(settings.mongo_uri.get_secret_value(), settings.mongo_database, timeout_ms)
    app = Dash(
        __name__,
        title=settings.title,
        url_base_pathname=settings.path_prefix,
        assets_folder=str(ASSETS),
        serve_locally=True,
        update_title=None,
    )
    app.layout = build_layout(settings)

    # The store is read in the background once per refresh interval: a refresh only builds the view, so its
    # time does not grow with the data (FerretDB reads do: they scan the collection).
    poller = poller_for(store, settings)

    @app.callback(*OUTPUTS, Input("tick", "n_intervals"))
    def refresh(_: int) -> tuple[Any, ...]:
        return view_outputs(view_of(poller.latest(), settings))

    def probe(ready_only: bool) -> Any:
        problem = store.ping()
        body = {"status": "ok", "mongo": "reachable" if problem is None else "unreachable"}
        if problem:
            body["detail"] = problem
        code = 503 if ready_only and problem else 200
        return jsonify(body), code

    # Probes answer at the root (kubelet calls the pod directly) and under the prefix (through the Ingress).
    prefixes = {"/", settings.path_prefix}
    for prefix in prefixes:
        app.server.add_url_rule(f"{prefix}healthz", f"healthz{prefix}", lambda: probe(False))
        app.server.add_url_rule(f"{prefix}readyz", f"readyz{prefix}", lambda: probe(True))
    log.info("dashboard_created", prefix=settings.path_prefix, refresh_s=settings.refresh_seconds, k=settings.k_anonymity)
    return app
