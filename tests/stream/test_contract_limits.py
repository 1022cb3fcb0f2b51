"""The field limits in docs/data-contract.md are the ones the stream applies (FIELD_LIMITS is the one place)."""

from __future__ import annotations

import re
from pathlib import Path

from userpipeline.jobs.stream.validate import FIELD_LIMITS, Reason

CONTRACT = Path(__file__).resolve().parents[2] / "docs" / "data-contract.md"


def test_documented_field_limits_equal_the_code() -> None:
    text = CONTRACT.read_text()
    table = text.split("<!-- field-limits:start -->")[1].split("<!-- field-limits:end -->")[0]
    documented = {field: int(limit) for field, limit in re.findall(r"^\| `([a-z.]+)` \| (\d+) \|$", table, re.M)}
    assert documented == FIELD_LIMITS


def test_every_reason_code_is_documented() -> None:
    text = CONTRACT.read_text()
    codes = {*(reason.value for reason in Reason), "sink_rejected"}
    assert {code for code in codes if f"| `{code}` |" not in text} == set()
