"""The served dashboard in headless Chromium, reading a real FerretDB filled in the data-contract format."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import httpx
from dashboard.dashboard_data import aggregate_documents, group, health_document, population, write
from dashboard.dashboard_support import wait_for
from selenium.webdriver.common.by import By

SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "dashboard.png"

# k = 5: NZ (3) and CH (2) fold into "other" (5); smith-family.net (2) and dupont.fr (3) too.
KNOWN = [
    group("total", "all", 215, 8390),
    group("nationality", "FR", 120, 4920), group("nationality", "US", 80, 2800), group("nationality", "DE", 10, 500),
    group("nationality", "NZ", 3, 100), group("nationality", "CH", 2, 70), group("nationality", "IT", 0, 0),
    group("gender", "female", 110, 4400), group("gender", "male", 100, 3800), group("gender", "unknown", 5, 190),
    group("ageBand", "18-24", 30, 650), group("ageBand", "25-34", 60, 1800), group("ageBand", "35-44", 70, 2800),
    group("ageBand", "45-54", 40, 2000), group("ageBand", "55-64", 10, 600), group("ageBand", "65+", 5, 540),
    group("emailDomain", "gmail.com", 150, 5800), group("emailDomain", "yahoo.com", 60, 2400),
    group("emailDomain", "smith-family.net", 2, 70), group("emailDomain", "dupont.fr", 3, 120),
]
HIDDEN_NAMES = ("New Zealand", "Switzerland", "smith-family.net", "dupont.fr", "Italy")

FIGURE_JS = """
const gd = document.getElementById(arguments[0]).querySelector('.js-plotly-plot');
if (!gd || !gd.data || !gd.data.length) return null;
const list = v => (v === undefined || v === null) ? null : Array.from(v);
return gd.data.map(t => ({x: list(t.x), y: list(t.y), z: list(t.z), locations: list(t.locations), customdata: list(t.customdata)}));
"""


def trace(driver: Any, graph_id: str) -> dict[str, list[Any]]:
    data = wait_for(lambda: driver.execute_script(FIGURE_JS, graph_id), 20, f"figure data of #{graph_id}")
    return data[0]


def text(driver: Any, element_id: str) -> str:
    return driver.find_element(By.ID, element_id).text


def severe(driver: Any) -> list[dict[str, Any]]:
    return [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def open_page(driver: Any, url: str, pill: str) -> None:
    driver.get("about:blank")  # leave the previous test's page, whose server is gone, before draining its logs
    driver.get_log("browser")
    driver.get(url)
    try:
        wait_for(lambda: text(driver, "status-pill") == pill, 30, f"the status '{pill}'")
    except AssertionError as error:
        body = driver.find_element(By.TAG_NAME, "body").text[:500]
        raise AssertionError(f"{error}\npage text: {body!r}\nconsole: {driver.get_log('browser')}") from None


def test_each_chart_shows_the_stored_values(store_db, mongo, serve_dashboard, browser) -> None:
    write(store_db, KNOWN, health_document(230, rejected=12, filtered=3))
    dash = serve_dashboard(mongo.uri, store_db.name, prefix="/team/dashboard/")
    open_page(browser, dash.base, "Live")

    bar = trace(browser, "nationality-bar")
    assert dict(zip(bar["customdata"], bar["x"])) == {"FR": 120, "US": 80, "DE": 10, "other": 5}
    world = trace(browser, "nationality-map")
    assert dict(zip(world["locations"], world["z"])) == {"FRA": 120, "USA": 80, "DEU": 10}
    by_nat = trace(browser, "age-by-nationality")
    assert dict(zip(by_nat["x"], by_nat["y"])) == {"FR": 41.0, "US": 35.0, "DE": 50.0, "other": 34.0}
    by_gender = trace(browser, "age-by-gender")
    assert dict(zip(by_gender["x"], by_gender["y"])) == {"female": 40.0, "male": 38.0, "unknown": 38.0}
    bands = trace(browser, "age-bands")
    assert dict(zip(bands["x"], bands["y"])) == {"18-24": 30, "25-34": 60, "35-44": 70, "45-54": 40, "55-64": 10, "65+": 5}
    domains = trace(browser, "email-domains")
    assert dict(zip(domains["y"], domains["x"])) == {"gmail.com": 150, "yahoo.com": 60}

    headline = text(browser, "headline")
    assert all(value in headline for value in ("215", "39.0", "230", "12"))
    health = text(browser, "health")
    assert all(value in health for value in ("412.5", "2.1 s", "#41", "5.0 %"))
    # The world map's shapes come from the app itself (no internet): countries are drawn.
    wait_for(lambda: browser.execute_script("return document.querySelectorAll('#nationality-map .choroplethlocation').length"),
             20, "countries drawn on the world map")
    assert severe(browser) == []


def test_a_group_below_k_is_not_shown_by_name(store_db, mongo, serve_dashboard, browser) -> None:
    write(store_db, KNOWN, health_document(230))
    dash = serve_dashboard(mongo.uri, store_db.name, k=5)
    open_page(browser, dash.base, "Live")
    trace(browser, "email-domains")
    everything = browser.page_source + str([trace(browser, gid) for gid in ("nationality-bar", "nationality-map", "email-domains")])
    for name in HIDDEN_NAMES:
        assert name not in everything
    for code in ("NZ", "CH", "NZL", "CHE"):
        assert code not in str(trace(browser, "nationality-bar")) + str(trace(browser, "nationality-map"))


def test_new_data_appears_after_the_next_refresh_without_reload(store_db, mongo, serve_dashboard, browser) -> None:
    write(store_db, KNOWN, health_document(230))
    dash = serve_dashboard(mongo.uri, store_db.name, refresh_seconds=1)
    open_page(browser, dash.base, "Live")
    browser.execute_script("window.__sameDocument = true;")
    before = text(browser, "headline")

    write(store_db, [group("total", "all", 255, 9990, batch=2), group("nationality", "NO", 40, 1600, batch=2)],
          health_document(270, batch=42))

    def norway_count() -> int | None:
        bar = trace(browser, "nationality-bar")
        return dict(zip(bar["customdata"], bar["x"])).get("NO")

    assert wait_for(norway_count, 20, "Norway in the nationality chart") == 40
    assert "255" in text(browser, "headline") and text(browser, "headline") != before
    assert "#42" in text(browser, "health")
    assert browser.execute_script("return window.__sameDocument === true;"), "the page was reloaded"
    assert severe(browser) == []


def test_empty_store_says_waiting_for_data(store_db, mongo, serve_dashboard, browser) -> None:
    dash = serve_dashboard(mongo.uri, store_db.name)
    open_page(browser, dash.base, "Waiting for data")
    assert "Waiting for data" in text(browser, "status-banner")
    assert "no aggregates yet" in text(browser, "status-banner")
    assert severe(browser) == []


def test_unreachable_database_is_reported_and_the_page_stays_up(serve_dashboard, browser) -> None:
    with socket.socket() as nobody:  # bound but not listening: connections are refused, and no one else gets the port
        nobody.bind(("127.0.0.1", 0))
        dash = serve_dashboard(f"mongodb://127.0.0.1:{nobody.getsockname()[1]}/", "userpipeline")
        check_unreachable(dash, browser)


def check_unreachable(dash: Any, browser: Any) -> None:
    open_page(browser, dash.base, "Database unreachable")
    banner = text(browser, "status-banner")
    assert "MongoDB is unreachable" in banner and "Retrying" in banner
    health = httpx.get(f"{dash.root}healthz", timeout=10)
    assert health.status_code == 200 and health.json()["mongo"] == "unreachable"
    assert httpx.get(f"{dash.root}readyz", timeout=10).status_code == 503
    assert severe(browser) == []


def test_probes_answer_at_the_root_and_under_the_prefix(store_db, mongo, serve_dashboard) -> None:
    dash = serve_dashboard(mongo.uri, store_db.name, prefix="/ops/dash/")
    for url in (f"{dash.root}healthz", f"{dash.base}healthz", f"{dash.root}readyz", f"{dash.base}readyz"):
        answer = httpx.get(url, timeout=10)
        assert answer.status_code == 200 and answer.json() == {"status": "ok", "mongo": "reachable"}, url
    assert httpx.get(dash.base, timeout=10).status_code == 200
    assert httpx.get(dash.root, timeout=10).status_code == 404


def test_screenshot_with_realistic_data(store_db, mongo, serve_dashboard, browser) -> None:
    people = population(48_213)
    write(store_db, aggregate_documents(people), health_document(len(people) + 2_540, rejected=1_271, filtered=2_495))
    dash = serve_dashboard(mongo.uri, store_db.name, refresh_seconds=5)
    open_page(browser, dash.base, "Live")
    trace(browser, "email-domains")
    wait_for(lambda: browser.execute_script("return document.querySelectorAll('#nationality-map .choroplethlocation').length"),
             20, "countries drawn on the world map")
    # A viewport as tall as the page, so the PNG shows all of it.
    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {"width": 1440, "height": height, "deviceScaleFactor": 1, "mobile": False})
    try:
        wait_for(lambda: browser.execute_script("return document.documentElement.scrollHeight") <= height, 10, "page to fit")
        SCREENSHOT.parent.mkdir(exist_ok=True)
        assert browser.save_screenshot(str(SCREENSHOT))
    finally:
        browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    assert severe(browser) == []
