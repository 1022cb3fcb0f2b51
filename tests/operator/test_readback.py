"""`Ready` means working: the operator reads back what the upstream controllers report about its children
(here an admin plays them, patching status), the stores and the stream's health document."""

from __future__ import annotations

import datetime as dt

import pytest

from kube.pipelines import Stores, get_pipeline, pipeline, set_working, wait_event, wait_ready
from kube.resources import condition, wait_for
from userpipeline.operator.kube.client import Kube


def wait_not_ready(kube: Kube, ns: str, name: str, part: str, reason: str) -> dict:
    def down() -> dict | None:
        obj = get_pipeline(kube, name, ns)
        ok = condition(obj, part).get("reason") == reason and condition(obj, "Ready").get("status") == "False"
        return obj if ok else None

    return wait_for(down, 30, what=f"{part} {reason}, Ready False")


def test_ready_waits_for_the_children_to_work(admin: Kube, operator, stores: Stores) -> None:
    ns = stores.namespace
    admin.create(pipeline("fresh", ns))
    obj = wait_not_ready(admin, ns, "fresh", "StreamJob", "NotRunning")  # nothing plays the controllers yet
    assert condition(obj, "Ready")["reason"] == "PartsNotWorking"
    message = condition(obj, "Ready")["message"]
    assert "Producer: NotAvailable" in message and "Topics: NotReady" in message and "Dashboard: NotAvailable" in message
    assert "not submitted yet" in condition(obj, "StreamJob")["message"]
    wait_ready(admin, "fresh", ns)  # the controllers report working: Ready flips True without a spec change


@pytest.mark.parametrize(("suffix", "kind", "part", "reason", "words"), [
    ("producer", "Deployment", "Producer", "NotAvailable", "0/1 replicas available"),
    ("raw", "KafkaTopic", "Topics", "NotReady", "Broken"),
    ("stream", "SparkApplication", "StreamJob", "NotRunning", "FAILED: driver OOMKilled"),
    ("dashboard", "Deployment", "Dashboard", "NotAvailable", "0/1 replicas available"),
], ids=["producer-stopped", "topic-not-ready", "spark-failed", "dashboard-down"])
def test_a_part_that_stops_working_turns_ready_false(admin: Kube, operator, stores: Stores, suffix: str, kind: str,
                                                     part: str, reason: str, words: str) -> None:
    ns, name = stores.namespace, f"rb-{suffix}"
    admin.create(pipeline(name, ns))
    wait_ready(admin, name, ns)
    set_working(admin, ns, name, suffix, kind, working=False)
    down = wait_not_ready(admin, ns, name, part, reason)
    assert condition(down, "Ready")["message"] == f"{part}: {reason}"
    assert words in condition(down, part)["message"]
    wait_event(admin, ns, name, f"{part}NotWorking", words)
    set_working(admin, ns, name, suffix, kind)
    wait_ready(admin, name, ns, play=False)


def test_a_stalled_stream_turns_ready_false(admin: Kube, operator, stores: Stores, mongo) -> None:
    ns = stores.namespace
    admin.create(pipeline("stall", ns))
    wait_ready(admin, "stall", ns)
    since = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=10)
    with mongo.client() as client:
        client[stores.database]["pipeline_health"].replace_one(
            {"_id": "stream"}, {"_id": "stream", "lastBatchAt": since, "lagRecords": 0,
                                "failing": {"batchId": 7, "since": since, "error": "Cassandra write timeout"}},
            upsert=True)
    try:
        down = wait_not_ready(admin, ns, "stall", "StreamJob", "StreamStalled")
        assert "batch 7 keeps failing" in condition(down, "StreamJob")["message"]
        assert "Cassandra write timeout" in condition(down, "StreamJob")["message"]
    finally:
        with mongo.client() as client:
            client[stores.database]["pipeline_health"].delete_one({"_id": "stream"})
    wait_ready(admin, "stall", ns)
