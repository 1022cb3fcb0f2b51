"""Pure view-model rules: k-anonymity folding, derived averages, empty and unreachable states."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import plotly.graph_objects as go
import pytest
from dashboard.dashboard_data import aggregate_documents, group, health_document, population

from userpipeline.dashboard import viewmodel as vm
from userpipeline.dashboard.countries import COUNTRIES, iso3
from userpipeline.dashboard.store import Group, Snapshot, snapshot_from_documents

UNITS = {"nationality-bar": ("xaxis", "users"), "age-by-nationality": ("yaxis", "years"), "age-by-gender": ("yaxis", "years"),
         "age-bands": ("yaxis", "users"), "email-domains": ("xaxis", "users")}
NOW = datetime(2026, 11, 29, 12, 0, 0, tzinfo=timezone.utc)


def bar_values(fig) -> dict[str, int]:
    trace = fig["data"][0]
    return dict(zip(trace["customdata"], trace["x"]))


def test_small_groups_fold_into_other_biggest_first() -> None:
    groups = [Group("US", 80, 2800), Group("FR", 120, 4920), Group("NZ", 3, 100), Group("CH", 2, 70)]
    assert vm.fold_small(groups, 5) == [Group("FR", 120, 4920), Group("US", 80, 2800), Group("other", 5, 170)]


def test_other_below_k_is_dropped_too() -> None:
    assert vm.fold_small([Group("FR", 10, 400), Group("NZ", 3, 100)], 5) == [Group("FR", 10, 400)]


def test_k_of_one_keeps_every_group() -> None:
    assert [g.key for g in vm.fold_small([Group("a", 1, 30), Group("b", 2, 60)], 1)] == ["b", "a"]


def test_zero_counts_and_unknown_dimensions_are_skipped() -> None:
    snap = snapshot_from_documents([group("nationality", "FR", 0, 0), group("colour", "red", 9, 9), group("gender", "male", 7, 210)], None)
    assert snap.groups == {"gender": [Group("male", 7, 210)]}


def test_averages_are_derived_from_sums_and_counts() -> None:
    fig = vm.age_by_gender([Group("female", 3, 100), Group("male", 4, 150)])
    assert dict(zip(fig["data"][0]["x"], fig["data"][0]["y"])) == {"female": 33.3, "male": 37.5}
    assert fig["layout"]["yaxis"]["title"]["text"] == "years"


def test_nationality_charts_map_codes_to_countries() -> None:
    groups = [Group("FR", 120, 4920), Group("GB", 60, 2400), Group("other", 7, 280)]
    world = vm.nationality_map(groups)
    assert dict(zip(world["data"][0]["locations"], world["data"][0]["z"])) == {"FRA": 120, "GBR": 60}
    assert bar_values(vm.nationality_bar(groups)) == {"FR": 120, "GB": 60, "other": 7}
    assert "France (FR)" in vm.nationality_bar(groups)["data"][0]["y"]


def test_every_randomuser_nationality_has_an_iso3_code() -> None:
    for nat in "AU BR CA CH DE DK ES FI FR GB IE IN IR MX NL NO NZ RS TR UA US".split():
        assert iso3(nat) and len(iso3(nat)) == 3
    assert iso3("other") is None and len(COUNTRIES) == 249


def test_age_bands_keep_their_natural_order() -> None:
    fig = vm.age_bands([Group("65+", 9, 700), Group("18-24", 9, 190), Group("35-44", 9, 360)])
    assert fig["data"][0]["x"] == ["18-24", "35-44", "65+"]


def test_top_domains_are_limited_and_never_show_other() -> None:
    groups = vm.fold_small([Group(f"d{i}.com", 100 - i, 0) for i in range(15)] + [Group("me.net", 1, 40)], 5)
    fig = vm.email_domains(groups, 10)
    assert fig["data"][0]["y"][::-1] == [f"d{i}.com" for i in range(10)]


def test_figures_are_valid_plotly_and_have_titles_and_units() -> None:
    people = population(2_000)
    snap = snapshot_from_documents(aggregate_documents(people), health_document(2_000))
    for gid, fig in vm.figures(snap, 5, 10).items():
        go.Figure(fig)  # Plotly's own validation: raises on any invalid property
        layout = fig["layout"]
        assert layout["title"]["text"], gid
        if gid == "nationality-map":
            assert fig["data"][0]["colorbar"]["title"]["text"] == "users"
        else:
            axis, unit = UNITS[gid]
            assert layout[axis]["title"]["text"] == unit, gid


def test_empty_store_gives_the_waiting_state_with_placeholders() -> None:
    view = vm.build_view(Snapshot(), None, k=5, top_domains=10, refresh_s=5, now=NOW, database="userpipeline")
    assert view.status == "empty" and "Waiting for data" in view.message and "'userpipeline'" in view.message
    assert view.figures and all(fig["layout"]["annotations"][0]["text"] == "Waiting for data" for fig in view.figures.values())


def test_unreachable_store_keeps_the_charts_and_says_why() -> None:
    view = vm.build_view(None, "ServerSelectionTimeoutError: refused", k=5, top_domains=10, refresh_s=5, now=NOW, database="db")
    assert view.status == "down" and "refused" in view.message and view.figures is None and view.headline is None


def test_headline_and_health_from_documents() -> None:
    docs = [group("total", "all", 215, 8390), group("nationality", "FR", 215, 8390)]
    health = {**health_document(230, rejected=12, filtered=3, now=NOW), "lastBatchAt": NOW - timedelta(seconds=4)}
    view = vm.build_view(snapshot_from_documents(docs, health), None, k=5, top_domains=10, refresh_s=5, now=NOW, database="db")
    tiles = {t.label: t for t in view.headline or []}
    assert tiles["Users"].value == "215" and tiles["Average age"].value == "39.0" and tiles["Rejected"].value == "12"
    assert tiles["Processed"].value == "230" and tiles["Filtered"].value == "3"
    health_tiles = {t.label: t for t in view.health or []}
    assert health_tiles["Last update"].value == "11:59:56 UTC" and health_tiles["Last update"].detail == "4 s ago"
    assert health_tiles["Freshness"].value == "2.1 s" and health_tiles["Last batch"].value == "#41"
    assert health_tiles["Rejected"].value == "5.0 %" and health_tiles["Records / s"].value == "412.5"


def test_average_age_of_fewer_than_k_users_is_not_shown() -> None:
    snap = snapshot_from_documents([group("total", "all", 3, 120)], None)
    assert {t.label: t.value for t in vm.headline(snap, 5)}["Average age"] == "—"


@pytest.mark.parametrize("seconds, text", [(5, "5 s ago"), (300, "5 min ago"), (7200, "2 h ago")])
def test_relative_time(seconds: int, text: str) -> None:
    assert vm._ago(NOW - timedelta(seconds=seconds), NOW) == text


def _view_with_health(health: dict, now: datetime) -> vm.View:
    docs = [group("total", "all", 215, 8390), group("nationality", "FR", 215, 8390)]
    return vm.build_view(snapshot_from_documents(docs, health), None, k=5, top_domains=10, refresh_s=5, now=now, database="db")


def test_a_batch_failing_for_long_shows_the_stalled_banner_with_the_reason() -> None:
    since = NOW - timedelta(seconds=300)
    health = {**health_document(230, now=since), "failing": {"since": since, "batchId": 42,
                                                             "error": "InvalidRequest: Batch too large"}}
    view = _view_with_health(health, NOW)
    assert view.status == "stalled"
    assert "batch 42 keeps failing since 11:55:00 UTC: InvalidRequest: Batch too large" in view.message
    assert view.figures and view.headline  # the last data stays on the page


def test_a_batch_failing_just_now_shows_the_retrying_banner() -> None:
    since = NOW - timedelta(seconds=10)
    health = {**health_document(230, now=NOW), "failing": {"since": since, "batchId": 42, "error": "OperationTimedOut: x"}}
    view = _view_with_health(health, NOW)
    assert view.status == "failing" and "Batch 42" in view.message and "11:59:50 UTC" in view.message
    assert "OperationTimedOut: x" in view.message


def test_no_batch_for_long_while_records_wait_is_stalled_and_a_recent_one_is_live() -> None:
    stale = {**health_document(230, now=NOW), "lastBatchAt": NOW - timedelta(minutes=10), "lagRecords": 500}
    view = _view_with_health(stale, NOW)
    assert view.status == "stalled" and "500 records wait in Kafka" in view.message
    assert _view_with_health(health_document(230, now=NOW), NOW).status == "ok"
    assert _view_with_health({**stale, "lagRecords": 0}, NOW).status == "ok"  # idle, nothing to do


def test_every_status_has_a_pill_and_a_banner_style() -> None:
    from pathlib import Path
    from typing import get_args

    from userpipeline.dashboard.app import PILL_TEXT

    css = (Path(vm.__file__).parent / "assets" / "style.css").read_text()
    for status in get_args(vm.Status):
        assert status in PILL_TEXT and f".banner-{status}" in css and f".pill-{status}" in css
