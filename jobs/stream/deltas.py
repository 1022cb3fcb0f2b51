"""Exact aggregate deltas for one micro-batch, from the batch and the stored versions of its users.

Pure Python, no I/O. A user contributes to one document per dimension (total, nationality, gender,
age band, email domain) with count 1 and ageSum = age. When a newer version of a stored user arrives,
its old contribution is subtracted and the new one added, so a user who changes nationality moves
from one group to the other. A record that is not newer than what is stored changes nothing.

Version order: the Kafka timestamp; on equal timestamps the first record (lowest partition, offset)
stays. Cassandra resolves writes by the same timestamp (`USING TIMESTAMP`), and a write whose
timestamp equals the stored one is never issued for a different record, so the table and the
aggregates always agree on which version of a user counts.

"Latest wins" covers every version with a valid user id, valid or not: when a user's newest record is
under the minimum age, rejected for another reason than its id, or already past the profile retention
when it arrives (`expired_before_ms`), it is a `Removal`: the stored version, if older, is deleted and its
contribution subtracted. Such a record is never stored itself.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
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
class Removal:
    """A user's record that removes the stored version instead of replacing it (a minor, a rejected record
    with a valid id, or a valid record already past the profile retention)."""

    user_id: str
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
    deletes: list[Stored] = field(default_factory=list)  # stored versions to delete (at their own timestamp)
    expired: int = 0  # valid records that arrived past the profile retention (stored nothing)


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


def _order(profile: Profile | Removal) -> tuple[int, int, int]:
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


def plan_batch(latest: Iterable[Profile], stored: Mapping[str, Stored], removals: Iterable[Removal] = (),
               expired_before_ms: int | None = None) -> BatchPlan:
    """Deltas, writes and deletes for a batch's latest records, given the stored versions of those users.

    A record that is the stored version itself (a batch re-run after its rows were written) is
    written again, which is idempotent, and adds no delta. A valid record whose Kafka timestamp is at
    or before `expired_before_ms` (retention already over) counts as a removal. Per user the newest
    of its valid records and removals wins (on equal timestamps a valid record beats a removal: with broker
    time, records a millisecond apart share one); a winning removal newer than the stored version deletes it.
    """
    totals: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    writes: list[Profile] = []
    deletes: list[Stored] = []
    newest: dict[str, Profile | Removal] = {}
    expired = 0
    for profile in latest:
        if expired_before_ms is not None and profile.event_time_ms <= expired_before_ms:
            expired += 1
            profile = Removal(profile.user_id, profile.event_time_ms, profile.source_partition, profile.source_offset)  # type: ignore[assignment]
        _keep_newest(newest, profile)
    for removal in removals:
        _keep_newest(newest, removal)

    def add(user: Contributes, sign: int) -> None:
        for key in dimension_keys(user):
            totals[key][0] += sign
            totals[key][1] += sign * user.age

    for record in newest.values():
        previous = stored.get(record.user_id)
        if isinstance(record, Removal):
            if previous is not None and record.event_time_ms > previous.event_time_ms:
                deletes.append(previous)
                add(previous, -1)
            continue
        if same_record(record, previous):
            writes.append(record)
            continue
        if not supersedes(record, previous):
            continue
        writes.append(record)
        if previous is not None:
            add(previous, -1)
        add(record, 1)
    deltas = [Delta(dim, key, count, age_sum) for (dim, key), (count, age_sum) in sorted(totals.items()) if count or age_sum]
    return BatchPlan(deltas, writes, deletes, expired)


def _rank(record: Profile | Removal) -> tuple[int, int, int, int]:
    """Newest first by Kafka timestamp; on a tie a valid record beats a removal, then the first offset wins."""
    return (record.event_time_ms, isinstance(record, Profile), -record.source_partition, -record.source_offset)


def _keep_newest(newest: dict[str, Profile | Removal], record: Profile | Removal) -> None:
    current = newest.get(record.user_id)
    if current is None or _rank(record) > _rank(current):
        newest[record.user_id] = record


def subtract(base: Iterable[Delta], removed: Iterable[Delta]) -> list[Delta]:
    """`base` minus `removed`, per document; zero changes dropped (a refused row's contribution taken out)."""
    totals: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for delta, sign in [*((d, 1) for d in base), *((d, -1) for d in removed)]:
        totals[(delta.dimension, delta.key)][0] += sign * delta.count
        totals[(delta.dimension, delta.key)][1] += sign * delta.age_sum
    return [Delta(dim, key, count, age_sum) for (dim, key), (count, age_sum) in sorted(totals.items()) if count or age_sum]
