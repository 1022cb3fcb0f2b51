"""The randomuser client against a local server replaying recorded API answers."""

import json
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from urllib.parse import parse_qs, urlparse

import pytest
from structlog.testing import capture_logs

from producer.kit import Answer, ReplayServer, fixture_body, wait_for
from userpipeline.jobs.producer.feeds import RandomUserFeed
from userpipeline.jobs.producer.randomuser import ApiUnavailable, RandomUserClient, parse_retry_after

PAGE1, PAGE2 = fixture_body("page1.json"), fixture_body("page2.json")
OK = Answer(200, PAGE1)


def client_for(server: ReplayServer, sleeps: list[float], **kwargs) -> RandomUserClient:
    return RandomUserClient(server.url, timeout=5, attempts=kwargs.pop("attempts", 6), backoff_initial=0.01,
                            backoff_max=0.05, sleep=sleeps.append, **kwargs)


def query(path: str) -> dict[str, list[str]]:
    return parse_qs(urlparse(path).query)


def test_fetch_returns_the_results_list():
    with ReplayServer([OK]) as server:
        users = client_for(server, []).fetch(5)
    assert [u["login"]["uuid"] for u in users] == [u["login"]["uuid"] for u in json.loads(PAGE1)["results"]]
    assert query(server.requests[0]) == {"results": ["5"]}


def test_429_500_and_truncated_bodies_are_retried_until_an_answer_arrives():
    answers = [
        Answer(429, b'{"error":"Too many requests"}', {"Retry-After": "7"}),
        Answer(500, b"Internal Server Error"),
        Answer(200, PAGE1, cut_connection_at=len(PAGE1) // 2),  # connection closed mid-body
        Answer(200, PAGE1[: len(PAGE1) // 3]),  # complete response, but truncated JSON
        Answer(200, fixture_body("error.json")),  # the API's own error document
        Answer(503, b"", {"Retry-After": format_datetime(datetime.now(timezone.utc) + timedelta(seconds=30), usegmt=True)}),
        Answer(200, PAGE2),
    ]
    sleeps: list[float] = []
    with ReplayServer(answers) as server, capture_logs() as logs:
        users = client_for(server, sleeps, attempts=10).fetch(5)
    assert [u["nat"] for u in users] == ["NO", "FR", "BR", "TR", "DE"]
    assert len(server.requests) == 7 and len(sleeps) == 6
    assert sleeps[0] >= 7, "Retry-After seconds honoured"
    assert 20 <= sleeps[5] <= 31, "Retry-After HTTP date honoured"
    assert all(0 < s <= 0.05 for s in sleeps[1:5]), "exponential backoff with jitter, capped"
    retries = [e for e in logs if e["event"] == "producer.api_retry"]
    assert [e["attempt"] for e in retries] == [1, 2, 3, 4, 5, 6]
    assert not any("example.com" in json.dumps(e) for e in logs), "no PII in logs"


def test_a_failing_api_is_reported_once_clearly_and_raises_after_the_attempts():
    sleeps: list[float] = []
    with ReplayServer([Answer(500, b"")]) as server, capture_logs() as logs:
        with pytest.raises(ApiUnavailable, match="failed 3 times"):
            client_for(server, sleeps, attempts=3).fetch(5)
    assert len(server.requests) == 3 and len(sleeps) == 2
    failures = [e for e in logs if e["event"] == "producer.api_unavailable"]
    assert len(failures) == 1 and failures[0]["log_level"] == "error" and failures[0]["attempts"] == 3
    assert "HTTP 500" in failures[0]["last_error"]


def test_a_truncated_body_every_time_is_an_error_not_a_crash():
    with ReplayServer([Answer(200, PAGE1, cut_connection_at=100)]) as server:
        with pytest.raises(ApiUnavailable):
            client_for(server, [], attempts=2).fetch(5)


def test_connection_refused_is_retried():
    with ReplayServer([OK]) as server:
        url = server.url
    client = RandomUserClient(url, timeout=2, attempts=3, backoff_initial=0.01, backoff_max=0.02, sleep=lambda s: None)
    with pytest.raises(ApiUnavailable, match="ConnectError"):
        client.fetch(5)


def test_client_errors_are_not_retried():
    with ReplayServer([Answer(404, b"not found")]) as server:
        with pytest.raises(ApiUnavailable, match="HTTP 404"):
            client_for(server, []).fetch(5)
    assert len(server.requests) == 1


def test_a_seed_walks_the_pages_and_results_are_bounded():
    with ReplayServer([OK]) as server:
        client = client_for(server, [], seed="abc")
        client.fetch(5)
        client.fetch(5)
    assert [query(p) for p in server.requests] == [
        {"results": ["5"], "seed": ["abc"], "page": ["1"]},
        {"results": ["5"], "seed": ["abc"], "page": ["2"]},
    ]
    with pytest.raises(ValueError):
        client.fetch(5001)


def test_retry_after_parsing():
    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    assert parse_retry_after("120") == 120
    assert parse_retry_after("Thu, 01 Jan 2026 00:01:00 GMT", now=lambda: now) == 60
    assert parse_retry_after("Wed, 31 Dec 2025 00:00:00 GMT", now=lambda: now) == 0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None


def test_the_feed_survives_a_failing_api_and_stops_at_its_count():
    answers = [Answer(500, b""), Answer(500, b""), Answer(200, PAGE1), Answer(200, PAGE2)]
    with ReplayServer(answers) as server:
        client = client_for(server, [], attempts=2)
        feed = RandomUserFeed(client, batch_size=5, stop=8, cooldown=0.01)
        items = []
        try:
            while not feed.exhausted:
                item = wait_for(feed.take, 30, "the next user")
                items.append(item)
        finally:
            feed.close()
    assert [index for index, _ in items] == list(range(8))
    assert [user["nat"] for _, user in items] == ["IR", "NL", "CA", "UA", "US", "NO", "FR", "BR"]
    assert query(server.requests[-1])["results"] == ["3"], "asks only for what is still needed"
