"""Status of a UserPipeline: conditions (Ready + one per part), effective values, and the Events to post."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from userpipeline.operator.kube.parts import PENDING_REASONS, Outcome

READY = "Ready"


@dataclass(frozen=True)
class Event:
    type: str  # Normal | Warning
    reason: str
    message: str


def ready(outcomes: list[Outcome]) -> Outcome:
    failing = [o for o in outcomes if not o.ok]
    if not failing:
        return Outcome(READY, True, "Working", f"all {len(outcomes)} parts applied and working")
    reason = "PartsFailing" if any(not o.pending for o in failing) else "PartsNotWorking"
    return Outcome(READY, False, reason, "; ".join(f"{o.condition}: {o.reason}" for o in failing))


def conditions(previous: list[dict[str, Any]], outcomes: list[Outcome], generation: int,
               now: str) -> list[dict[str, Any]]:
    """Ready first, then one per part; lastTransitionTime only moves when the status flips."""
    before = {c.get("type"): c for c in previous}
    result = []
    for outcome in [ready(outcomes), *outcomes]:
        status = "True" if outcome.ok else "False"
        old = before.get(outcome.condition, {})
        result.append({
            "type": outcome.condition, "status": status, "reason": outcome.reason, "message": outcome.message,
            "observedGeneration": generation,
            "lastTransitionTime": old.get("lastTransitionTime", now) if old.get("status") == status else now,
        })
    return result


def events(previous: list[dict[str, Any]], outcomes: list[Outcome]) -> list[Event]:
    """One Normal event per change, one Warning when a part starts failing (or fails differently),
    one Normal event when it recovers: retries of the same failure post nothing new. A part that is
    applied but not working yet (pending) warns only when it worked before."""
    before = {c.get("type"): c for c in previous}
    result = []
    for outcome in outcomes:
        old = before.get(outcome.condition, {})
        if outcome.ok or outcome.pending:
            result += [Event("Normal", f"{outcome.condition}Updated", change) for change in outcome.changes]
        if outcome.ok:
            if old.get("status") == "False" and old.get("reason") not in PENDING_REASONS:
                result.append(Event("Normal", f"{outcome.condition}Recovered", outcome.message))
        elif outcome.pending:
            if old.get("status") == "True":
                result.append(Event("Warning", f"{outcome.condition}NotWorking", f"{outcome.reason}: {outcome.message}"))
        elif old.get("status") != "False" or old.get("reason") != outcome.reason:
            result.append(Event("Warning", f"{outcome.condition}Failed", f"{outcome.reason}: {outcome.message}"))
    return result


def effective(previous: dict[str, Any], outcomes: list[Outcome]) -> dict[str, Any]:
    """What is actually in force: a failing part keeps the values it last applied."""
    merged = dict(previous)
    for outcome in outcomes:
        if outcome.ok or outcome.pending:
            merged.update(outcome.effective)
    return merged
