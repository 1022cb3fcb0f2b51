"""Status of a UserPipeline: conditions (Ready + one per part), effective values, and the Events to post."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from userpipeline.operator.kube.parts import Outcome

READY = "Ready"


@dataclass(frozen=True)
class Event:
    type: str  # Normal | Warning
    reason: str
    message: str


def ready(outcomes: list[Outcome]) -> Outcome:
    failing = [o for o in outcomes if not o.ok]
    if not failing:
        return Outcome(READY, True, "Reconciled", f"all {len(outcomes)} parts applied")
    return Outcome(READY, False, "PartsFailing", "; ".join(f"{o.condition}: {o.reason}" for o in failing))


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
    one Normal event when it recovers: retries of the same failure post nothing new."""
    before = {c.get("type"): c for c in previous}
    result = []
    for outcome in outcomes:
        old = before.get(outcome.condition, {})
        if outcome.ok:
            result += [Event("Normal", f"{outcome.condition}Updated", change) for change in outcome.changes]
            if old.get("status") == "False":
                result.append(Event("Normal", f"{outcome.condition}Recovered", outcome.message))
        elif old.get("status") != "False" or old.get("reason") != outcome.reason:
            result.append(Event("Warning", f"{outcome.condition}Failed", f"{outcome.reason}: {outcome.message}"))
    return result


def effective(previous: dict[str, Any], outcomes: list[Outcome]) -> dict[str, Any]:
    """What is actually in force: a failing part keeps the values it last applied."""
    merged = dict(previous)
    for outcome in outcomes:
        if outcome.ok:
            merged.update(outcome.effective)
    return merged
