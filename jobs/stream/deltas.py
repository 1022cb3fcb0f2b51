"""Exact aggregate deltas for one micro-batch, from the batch and the stored versions of its users.

Pure Python, no I/O. A user contributes to one document per dimension (total, nationality, gender,
age band, email domain) with count 1 and ageSum = age. When a newer version of a stored user arrives,
its old contribution is subtracted and the new one added, so a user who changes nationality moves
from one group to the other. A record that is not newer than what is stored changes nothing.

Version order: the Kafka timestamp; on equal timestamps the first record (lowest partition, offset)
stays. Cassandra resolves writes by the same timestamp (`USING TIMESTAMP`), and a write whose
timestamp equals the stored one is never issued for a different record, so the table and the
aggregates always agree on which version of a user counts. Filtered records (under the minimum age)
and rejected ones never reach this module: they leave the stored version of a user as it is.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

TOTAL, NATIONALITY, GENDER, AGE_BAND, EMAIL_DOMAIN = "total", "nationality", "gender", "ageBand", "emailDomain"
DIMENSIONS = (TOTAL, NATIONALITY, GENDER, AGE_BAND, EMAIL_DOMAIN)
UNKNOWN = "unknown"
AGE_BANDS = ((18, "0-17"), (25, "18-24"), (35, "25-34"), (45, "35-44"), (55, "45-54"), (65, "55-64"))


class Contributes(Protocol):
    gender: str | None
    nat: str | None
    age: int
    email_domain: str | None


@dataclass(frozen=True)
class Profile:
    """One valid, pseudonymised record of the batch (the columns of transform.PROFILE_COLUMNS)."""

    user_id: str
    gender: str | None
    nat: str | None
    age: int
    api_age: int | None
    email_domain: str | None
    email_hmac: str | None
    phone_hmac: str | None
    cell_hmac: str | None
    address_hmac: str | None
    name_hmac: str | None
    dob_hmac: str | None
    registered_ms: int | None
    event_time_ms: int
    source_partition: int
    source_offset: int


@dataclass(frozen=True)
class Stored:
    """What Cassandra holds for a user: its version and what it contributes to the aggregates."""

    user_id: str
    gender: str | None
    nat: str | None
    age: int
    email_domain: str | None
    event_time_ms: int
    source_partition: int
    source_offset: int


@dataclass(frozen=True)
class Delta:
    dimension: str
    key: str
    count: int
    age_sum: int

    @property
    def doc_id(self) -> str:
        return doc_id(self.dimension, self.key)


@dataclass(frozen=True)
class BatchPlan:
    deltas: list[Delta]  # non-zero changes, one per aggregate document
    writes: list[Profile]  # rows to upsert into Cassandra


def doc_id(dimension: str, key: str) -> str:
    return f"{dimension}:{key}"


def age_band(age: int) -> str:
    for upper, band in AGE_BANDS:
        if age < upper:
            return band
    return "65+"


def dimension_keys(user: Contributes) -> list[tuple[str, str]]:
    gender = user.gender if user.gender in ("female", "male") else UNKNOWN
    return [
        (TOTAL, "all"),
        (NATIONALITY, user.nat or UNKNOWN),
        (GENDER, gender),
        (AGE_BAND, age_band(user.age)),
        (EMAIL_DOMAIN, user.email_domain or UNKNOWN),
    ]


def _order(profile: Profile) -> tuple[int, int, int]:
    return (profile.event_time_ms, -profile.source_partition, -profile.source_offset)


def latest_per_user(profiles: Iterable[Profile]) -> list[Profile]:
    """One record per user: the latest Kafka timestamp, the first offset on a tie."""
    latest: dict[str, Profile] = {}
    for profile in profiles:
        current = latest.get(profile.user_id)
        if current is None or _order(profile) > _order(current):
            latest[profile.user_id] = profile
    return list(latest.values())


def same_record(profile: Profile, stored: Stored | None) -> bool:
    return stored is not None and (profile.event_time_ms, profile.source_partition, profile.source_offset) == (
        stored.event_time_ms, stored.source_partition, stored.source_offset)


def supersedes(profile: Profile, stored: Stored | None) -> bool:
    return stored is None or profile.event_time_ms > stored.event_time_ms


def plan_batch(latest: Iterable[Profile], stored: Mapping[str, Stored]) -> BatchPlan:
    """Deltas and writes for a batch's latest records, given the stored versions of those users.

    A record that is the stored version itself (a batch re-run after its rows were written) is
    written again, which is idempotent, and adds no delta.
    """
    totals: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    writes: list[Profile] = []
    for profile in latest:
        previous = stored.get(profile.user_id)
        if same_record(profile, previous):
            writes.append(profile)
            continue
        if not supersedes(profile, previous):
            continue
        writes.append(profile)
        if previous is not None:
            for key in dimension_keys(previous):
                totals[key][0] -= 1
                totals[key][1] -= previous.age
        for key in dimension_keys(profile):
            totals[key][0] += 1
            totals[key][1] += profile.age
    deltas = [Delta(dim, key, count, age_sum) for (dim, key), (count, age_sum) in sorted(totals.items()) if count or age_sum]
    return BatchPlan(deltas, writes)


def subtract(base: Iterable[Delta], removed: Iterable[Delta]) -> list[Delta]:
    """`base` minus `removed`, per document; zero changes dropped (a refused row's contribution taken out)."""
    totals: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for delta, sign in [*((d, 1) for d in base), *((d, -1) for d in removed)]:
        totals[(delta.dimension, delta.key)][0] += sign * delta.count
        totals[(delta.dimension, delta.key)][1] += sign * delta.age_sum
    return [Delta(dim, key, count, age_sum) for (dim, key), (count, age_sum) in sorted(totals.items()) if count or age_sum]
