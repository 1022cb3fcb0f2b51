"""The page: header with status, headline tiles, chart grid, pipeline-health panel."""

from __future__ import annotations

from dash import dcc, html

from userpipeline.dashboard.settings import DashboardSettings
from userpipeline.dashboard.viewmodel import GRAPH_IDS, Tile, empty_figures

# Each chart's card width in the 6-column grid.
CARD_WIDTH = {
    "nationality-map": "span-4",
    "nationality-bar": "span-2",
    "age-by-nationality": "span-4",
    "age-by-gender": "span-2",
    "age-bands": "span-2",
    "email-domains": "span-2",
}


def tiles(items: list[Tile]) -> list[html.Div]:
    return [
        html.Div(
            [html.Div(t.label, className="tile-label"), html.Div(t.value, className="tile-value"),
             html.Div(t.detail, className="tile-detail")],
            className=f"tile tone-{t.tone}",
        )
        for t in items
    ]


def graph_config(settings: DashboardSettings) -> dict[str, object]:
    # The world map's shapes are served from assets/: the page must work without internet access.
    return {
        "displayModeBar": False,
        "topojsonURL": f"{settings.path_prefix}assets/topojson/",
    }


def build_layout(settings: DashboardSettings) -> html.Div:
    figures = empty_figures(settings.top_domains)
    config = graph_config(settings)
    cards = [
        html.Div(dcc.Graph(id=gid, figure=figures[gid], config=config, responsive=True, className="graph"), className=f"card {CARD_WIDTH[gid]}")
        for gid in GRAPH_IDS
    ]
    health = html.Div(
        [html.H2("Pipeline health", className="card-title"), html.Div(id="health", className="health-grid")],
        className="card span-2 health-card",
    )
    return html.Div(
        [
            html.Header(
                [
                    html.Div([html.H1(settings.title), html.P("Live aggregates of the user-profile stream", className="subtitle")]),
                    html.Div(
                        [html.Span("Connecting…", id="status-pill", className="pill pill-empty"),
                         html.Span("", id="last-updated", className="last-updated")],
                        className="header-status",
                    ),
                ],
                className="topbar",
            ),
            html.Div("Loading…", id="status-banner", className="banner banner-empty"),
            html.Section(id="headline", className="tiles"),
            html.Main([*cards[:5], health, cards[5]], className="grid"),
            html.Footer(
                f"Aggregates only, no personal data. Groups of fewer than {settings.k_anonymity} users are shown as "
                f"'other'. Refreshes every {settings.refresh_seconds} s.",
                className="footer",
            ),
            dcc.Interval(id="tick", interval=settings.refresh_seconds * 1000, n_intervals=0),
        ],
        className="page",
    )
