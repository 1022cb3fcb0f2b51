"""`Ready` means data flows when the operator's `flow_seconds` is set (the chart's default): the StreamJob part
reads the stream's last batch time and says why nothing flows."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from userpipeline.operator.kube.parts import PENDING_REASONS, Context
from userpipeline.operator.kube.settings import OperatorSettings
from userpipeline.operator.kube.stream import flow_problem
from userpipeline.operator.spec import UserPipelineSpec

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=timezone.utc)


def context(flow_seconds: float, **producer) -> Context:
    spec = UserPipelineSpec.model_validate({"producer": {"ratePerSecond": 10, **producer}})
    return Context("p", "ns", "uid", spec, OperatorSettings(flow_seconds=flow_seconds), kube=None)


def batch(seconds_ago: float, naive: bool = False) -> dict:
    at = NOW - timedelta(seconds=seconds_ago)
    return {"lastBatchAt": at.replace(tzinfo=None) if naive else at}


def test_off_by_default_ready_means_the_parts_work() -> None:
    assert OperatorSettings().flow_seconds == 0
    assert flow_problem(context(0), None, NOW) is None


@pytest.mark.parametrize(("health", "producer", "reason"), [
    (None, {}, "NoDataYet"),
    (batch(61), {}, "NoData"),
    (batch(120, naive=True), {}, "NoData"),  # MongoDB hands back naive UTC datetimes
    (batch(1), {"paused": True}, "ProducerPaused"),
    (batch(1), {"ratePerSecond": 0}, "ProducerPaused"),
])
def test_why_no_data_flows(health, producer, reason) -> None:
    found = flow_problem(context(30, **producer), health, NOW)
    assert found is not None and found[0] == reason and found[0] in PENDING_REASONS
    assert found[1]  # a sentence a person can act on


def test_recent_batch_flows_and_slow_rates_get_time_for_their_records() -> None:
    assert flow_problem(context(30), batch(29), NOW) is None
    assert flow_problem(context(30, ratePerSecond=0.01), batch(300), NOW) is None  # 3 records take 300 s
    assert flow_problem(context(30, ratePerSecond=0.01), batch(331), NOW)[0] == "NoData"
