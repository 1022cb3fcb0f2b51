"""Pure functions from aggregate documents to what the page shows: figures, tiles, status.

No I/O here, so every rule (k-anonymity folding, averages, empty and error states) is unit-testable.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Literal

from userpipeline.dashboard.countries import country_name, iso3
from userpipeline.dashboard.store import Group, Snapshot, as_utc
from userpipeline.jobs.stream.health import assess

OTHER = "other"
AGE_BANDS = ("0-17", "18-24", "25-34", "35-44", "45-54", "55-64", "65+")
GRAPH_IDS = ("nationality-map", "nationality-bar", "age-by-nationality", "age-by-gender", "age-bands", "email-domains")

INK, MUTED, ACCENT, ACCENT_2, GRID = "#1f2937", "#6b7280", "#4f46e5", "#0d9488", "#e5e7eb"
GENDER_COLOURS = {"female": "#db2777", "male": "#2563eb", "unknown": "#9ca3af", OTHER: "#9ca3af"}
FONT = "Inter, -apple-system, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif"

Status = Literal["ok", "empty", "down", "stalled", "failing"]
Figure = dict[str, Any]  # a Plotly figure as Dash sends it: {"data": [...], "layout": {...}}


@dataclass(frozen=True)
class Tile:
    label: str
    value: str
    detail: str = ""
    tone: Literal["normal", "good", "warn", "bad"] = "normal"


@dataclass(frozen=True)
class View:
    status: Status
    message: str
    updated: str
    headline: list[Tile] | None
    health: list[Tile] | None
    figures: dict[str, Figure] | None  # None: keep what the page shows


def fold_small(groups: list[Group], k: int) -> list[Group]:
    """Groups below k merge into one 'other' group (dropped too if it is itself below k); biggest first."""
    kept = sorted((g for g in groups if g.count >= k and g.key != OTHER), key=lambda g: (-g.count, g.key))
    small = [g for g in groups if g.count < k or g.key == OTHER]
    other = Group(OTHER, sum(g.count for g in small), sum(g.age_sum for g in small))
    return kept + [other] if other.count >= k else kept


def _number(value: float | int | None, digits: int = 0) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def _ago(then: datetime | None, now: datetime) -> str:
    if then is None:
        return "never"
    seconds = max(0, int((now - then).total_seconds()))
    if seconds < 90:
        return f"{seconds} s ago"
    if seconds < 5400:
        return f"{seconds // 60} min ago"
    return f"{seconds // 3600} h ago"


def _clock(moment: datetime | None) -> str:
    return moment.astimezone(timezone.utc).strftime("%H:%M:%S UTC") if moment else "—"


def _axis(title: str | None = None, value_range: list[float] | None = None, **extra: Any) -> dict[str, Any]:
    axis: dict[str, Any] = {"gridcolor": GRID, "zeroline": False, "automargin": True, **extra}
    if title:
        axis["title"] = {"text": title}
    if value_range:
        axis["range"] = value_range
    return axis


def _figure(title: str, traces: list[dict[str, Any]], **layout: Any) -> Figure:
    """A plain Plotly figure dict: no template and no validation, so a refresh stays cheap."""
    base = {
        "title": {"text": title, "x": 0.01, "xanchor": "left", "font": {"size": 15, "color": INK}},
        "font": {"family": FONT, "size": 12, "color": INK},
        "margin": {"l": 10, "r": 16, "t": 48, "b": 10},
        "paper_bgcolor": "rgba(0,0,0,0)",
        "plot_bgcolor": "rgba(0,0,0,0)",
        "showlegend": False,
        "hoverlabel": {"font": {"family": FONT}},
        "xaxis": _axis(),
        "yaxis": _axis(),
    }
    return {"data": traces, "layout": {**base, **layout}}


def _room(values: list[float]) -> list[float]:
    """An axis range with space after the longest bar for its outside label."""
    return [0, max(values, default=0) * 1.18 + 1]


def placeholder(title: str, message: str = "Waiting for data") -> Figure:
    note = {"text": message, "showarrow": False, "font": {"size": 14, "color": MUTED}, "xref": "paper", "yref": "paper",
            "x": 0.5, "y": 0.5}
    return _figure(title, [], xaxis={"visible": False}, yaxis={"visible": False}, annotations=[note])


def _bar(x: list[Any], y: list[Any], colour: str | list[str], hover: str, text: list[str], **extra: Any) -> dict[str, Any]:
    return {"type": "bar", "x": x, "y": y, "marker": {"color": colour}, "text": text, "textposition": "outside",
            "cliponaxis": False, "hovertemplate": hover + "<extra></extra>", **extra}


def _hbar(groups: list[Group], labels: list[str], colour: str | list[str], **extra: Any) -> dict[str, Any]:
    """Horizontal bars, biggest on top (Plotly draws them bottom-up)."""
    return _bar([g.count for g in groups][::-1], labels[::-1], colour[::-1] if isinstance(colour, list) else colour,
                "%{y}: %{x:,} users", [f"{g.count:,}" for g in groups][::-1], orientation="h", **extra)


def _nat_label(key: str) -> str:
    return "Other (small groups)" if key == OTHER else f"{country_name(key)} ({key})"


def nationality_bar(groups: list[Group]) -> Figure:
    title = "Users per nationality"
    if not groups:
        return placeholder(title)
    colours = [MUTED if g.key == OTHER else ACCENT for g in groups]
    trace = _hbar(groups, [_nat_label(g.key) for g in groups], colours, customdata=[g.key for g in groups][::-1])
    return _figure(title, [trace], xaxis=_axis("users", _room(trace["x"])), yaxis=_axis(showgrid=False), bargap=0.25)


def nationality_map(groups: list[Group]) -> Figure:
    title = "Users by country of nationality"
    mapped = [(g, code) for g in groups if (code := iso3(g.key))]
    if not mapped:
        return placeholder(title)
    trace = {
        "type": "choropleth",
        "locations": [code for _, code in mapped],
        "z": [g.count for g, _ in mapped],
        "text": [_nat_label(g.key) for g, _ in mapped],
        "customdata": [g.key for g, _ in mapped],
        "locationmode": "ISO-3",
        "colorscale": [[0, "#e0e7ff"], [0.5, "#818cf8"], [1, "#3730a3"]],
        "marker": {"line": {"color": "#ffffff", "width": 0.5}},
        "colorbar": {"title": {"text": "users"}, "thickness": 12, "len": 0.8},
        "hovertemplate": "%{text}: %{z:,} users<extra></extra>",
    }
    geo = {"projection": {"type": "natural earth"}, "showframe": False, "showcoastlines": False, "showcountries": True,
           "countrycolor": "#ffffff", "showland": True, "landcolor": "#f3f4f6", "bgcolor": "rgba(0,0,0,0)",
           "lataxis": {"range": [-58, 85]}}
    return _figure(title, [trace], geo=geo, margin={"l": 0, "r": 0, "t": 48, "b": 0})


def _average_bars(groups: list[Group], title: str, labels: list[str], colours: list[str]) -> Figure:
    averages = [round(g.average_age or 0.0, 1) for g in groups]
    trace = _bar(labels, averages, colours, "%{x}: %{y:.1f} years (%{customdata[1]:,} users)",
                 [f"{a:.1f}" for a in averages], customdata=[[g.key, g.count] for g in groups])
    return _figure(title, [trace], xaxis=_axis(showgrid=False), yaxis=_axis("years", _room(averages)), bargap=0.3)


def age_by_nationality(groups: list[Group]) -> Figure:
    title = "Average age by nationality"
    if not groups:
        return placeholder(title)
    ordered = sorted(groups, key=lambda g: (g.key == OTHER, -(g.average_age or 0)))
    return _average_bars(ordered, title, [g.key for g in ordered], [MUTED if g.key == OTHER else ACCENT_2 for g in ordered])


def age_by_gender(groups: list[Group]) -> Figure:
    title = "Average age by gender"
    if not groups:
        return placeholder(title)
    ordered = sorted(groups, key=lambda g: (g.key == OTHER, g.key))
    return _average_bars(ordered, title, [g.key for g in ordered], [GENDER_COLOURS.get(g.key, ACCENT) for g in ordered])


def age_bands(groups: list[Group]) -> Figure:
    title = "Age distribution"
    if not groups:
        return placeholder(title)
    rank = {band: i for i, band in enumerate((*AGE_BANDS, OTHER))}
    ordered = sorted(groups, key=lambda g: (rank.get(g.key, len(rank)), g.key))
    counts = [g.count for g in ordered]
    trace = _bar([g.key for g in ordered], counts, [MUTED if g.key == OTHER else ACCENT for g in ordered],
                 "%{x} years: %{y:,} users", [f"{n:,}" for n in counts])
    return _figure(title, [trace], xaxis=_axis("age band (years)", showgrid=False), yaxis=_axis("users", _room(counts)), bargap=0.2)


def email_domains(groups: list[Group], top: int) -> Figure:
    title = f"Top {top} email domains"
    named = [g for g in groups if g.key != OTHER][:top]
    if not named:
        return placeholder(title)
    trace = _hbar(named, [g.key for g in named], ACCENT_2)
    return _figure(title, [trace], xaxis=_axis("users", _room(trace["x"])), yaxis=_axis(showgrid=False), bargap=0.25)


def _total(snapshot: Snapshot) -> Group | None:
    totals = snapshot.dimension("total")
    if totals:
        return totals[0]
    genders = snapshot.dimension("gender")  # older stores without a `total` document
    return Group("all", sum(g.count for g in genders), sum(g.age_sum for g in genders)) if genders else None


def headline(snapshot: Snapshot, k: int) -> list[Tile]:
    """Totals: users and their average age from the `total` document, record counts from the stream's."""
    total = _total(snapshot)
    health = snapshot.health or {}
    average = total.average_age if total and total.count >= k else None
    return [
        Tile("Users", _number(total.count if total else 0), "profiles in the store"),
        Tile("Average age", _number(average, 1), "years"),
        Tile("Nationalities", _number(len(snapshot.dimension("nationality"))), "distinct"),
        Tile("Processed", _number(health.get("processed")), "records, cumulative"),
        Tile("Rejected", _number(health.get("rejected")), "to the dead-letter topic", "warn" if health.get("rejected") else "normal"),
        Tile("Filtered", _number(health.get("filtered")), "under the minimum age"),
    ]


def health_tiles(snapshot: Snapshot, now: datetime, stale_after_s: float) -> list[Tile]:
    """How the stream is doing: rates, delays and when it last wrote."""
    health = snapshot.health
    if not health:
        return [Tile("Stream", "no report yet", "the streaming job has not written a batch")]
    last = as_utc(health.get("lastBatchAt")) or snapshot.updated_at
    age = (now - last).total_seconds() if last else None
    freshness = health.get("freshnessSeconds")
    rejected, processed = health.get("rejected") or 0, health.get("processed") or 0
    share = 100 * rejected / (rejected + processed) if rejected + processed else None
    return [
        Tile("Records / s", _number(health.get("recordsPerSecond"), 1), "last micro-batch"),
        Tile("Freshness", f"{_number(freshness, 1)} s" if freshness is not None else "—", "end-to-end, newest record",
             "warn" if freshness is not None and freshness > stale_after_s else "good"),
        Tile("Rejected", f"{_number(share, 1)} %" if share is not None else "—", f"{_number(rejected)} records dead-lettered",
             "warn" if rejected else "good"),
        Tile("Kafka lag", _number(health.get("lagRecords")), "records behind"),
        Tile("Last batch", f"#{health.get('lastBatchId', '—')}",
             f"{_number(health.get('batchRecords'))} records in {_number(health.get('batchSeconds'), 1)} s"),
        Tile("Last update", _clock(last), _ago(last, now), "warn" if age is not None and age > stale_after_s else "good"),
    ]


def figures(snapshot: Snapshot, k: int, top_domains: int) -> dict[str, Figure]:
    nationalities = fold_small(snapshot.dimension("nationality"), k)
    return {
        "nationality-map": nationality_map(nationalities),
        "nationality-bar": nationality_bar(nationalities),
        "age-by-nationality": age_by_nationality(nationalities),
        "age-by-gender": age_by_gender(fold_small(snapshot.dimension("gender"), k)),
        "age-bands": age_bands(fold_small(snapshot.dimension("ageBand"), k)),
        "email-domains": email_domains(fold_small(snapshot.dimension("emailDomain"), k), top_domains),
    }


def empty_figures(top_domains: int = 10) -> dict[str, Figure]:
    return figures(Snapshot(), 1, top_domains)


def build_view(
    snapshot: Snapshot | None, error: str | None, *, k: int, top_domains: int, refresh_s: int, now: datetime, database: str,
    checked_at: datetime | None = None,
) -> View:
    """What the page shows for one refresh: `snapshot` when MongoDB answered (at `checked_at`), else `error`."""
    checked = f"checked {_clock(checked_at or now)}"
    if snapshot is None:
        return View(
            "down",
            f"MongoDB is unreachable ({error}). Retrying every {refresh_s} s; the charts keep the last data received.",
            f"Last update unknown · {checked}",
            None, None, None,
        )
    updated = f"Data as of {_clock(snapshot.updated_at)} ({_ago(snapshot.updated_at, now)}) · {checked}"
    if snapshot.empty:
        return View(
            "empty",
            f"Waiting for data: the database '{database}' has no aggregates yet. "
            f"Start the pipeline (make up); this page refreshes every {refresh_s} s.",
            f"No data yet · {checked}",
            headline(snapshot, k), health_tiles(snapshot, now, 60), empty_figures(top_domains),
        )
    stale_after = max(60.0, 6 * refresh_s)
    status, message = stream_alert(snapshot.health, now) or ("ok", "Live")
    return View(status, message, updated, headline(snapshot, k), health_tiles(snapshot, now, stale_after),
                figures(snapshot, k, top_domains))


def stream_alert(health: dict[str, Any] | None, now: datetime) -> tuple[Status, str] | None:
    """A banner when the stream is stalled (the shared verdict, jobs/stream/health.py) or a batch is failing."""
    verdict = assess(health, now)
    if verdict.stalled:
        return "stalled", f"The stream is stalled: {verdict.reason}. The charts show the last data stored."
    failing = (health or {}).get("failing")
    if failing:
        since = as_utc(failing.get("since"))
        return "failing", (f"Batch {failing.get('batchId')} of the stream is failing since {_clock(since)} and is "
                           f"being retried: {failing.get('error', 'unknown error')}")
    return None
