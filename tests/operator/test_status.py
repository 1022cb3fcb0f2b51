"""Status and Event rules, without a cluster."""

from __future__ import annotations

from userpipeline.operator.kube.main import backoff
from userpipeline.operator.kube.parts import Outcome
from userpipeline.operator.kube.status import conditions, effective, events


def ok(name: str, changes: list[str] | None = None, **values) -> Outcome:
    return Outcome(name, True, "Applied", f"{name} fine", values, changes or [])


def bad(name: str, reason: str = "Unreachable") -> Outcome:
    return Outcome(name, False, reason, f"{name} down")


def test_ready_summarises_the_parts() -> None:
    conds = conditions([], [ok("A"), bad("B")], 3, "t0")
    assert [c["type"] for c in conds] == ["Ready", "A", "B"]
    assert conds[0]["status"] == "False" and conds[0]["message"] == "B: Unreachable"
    assert all(c["observedGeneration"] == 3 for c in conds)
    assert conditions([], [ok("A")], 3, "t0")[0]["status"] == "True"


def test_transition_time_moves_only_when_status_flips() -> None:
    first = conditions([], [bad("B")], 1, "t0")
    again = conditions(first, [bad("B")], 1, "t1")
    healed = conditions(again, [ok("B")], 1, "t2")
    assert [c["lastTransitionTime"] for c in again] == ["t0", "t0"]
    assert [c["lastTransitionTime"] for c in healed] == ["t2", "t2"]


def test_a_repeated_failure_posts_one_warning_and_recovery_posts_once() -> None:
    first = events([], [bad("B")])
    assert [(e.type, e.reason) for e in first] == [("Warning", "BFailed")]
    before = conditions([], [bad("B")], 1, "t0")
    assert events(before, [bad("B")]) == []
    assert [e.reason for e in events(before, [bad("B", "SecretMissing")])] == ["BFailed"]
    assert [e.reason for e in events(before, [ok("B")])] == ["BRecovered"]


def test_changes_become_normal_events() -> None:
    posted = events([], [ok("A", ["rate 5"]), ok("C")])
    assert [(e.type, e.reason, e.message) for e in posted] == [("Normal", "AUpdated", "rate 5")]


def test_a_failing_part_keeps_its_last_effective_values() -> None:
    merged = effective({"ttl": 10, "rate": 1}, [ok("A", rate=2), Outcome("B", False, "x", "y", {"ttl": 99})])
    assert merged == {"ttl": 10, "rate": 2}


def test_backoff_grows_and_is_capped() -> None:
    assert [backoff(n, 30) for n in range(7)] == [1, 2, 4, 8, 16, 30, 30]
