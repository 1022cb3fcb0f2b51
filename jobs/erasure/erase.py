"""`userpipeline erase`: delete people from Cassandra, subtract them from the aggregates once, keep them out.

One run erases a set of subjects (user ids and emails), in this order:

1. Take the erasure lock (one erase at a time, a lease so a crashed run does not block forever), then
   finish any erasure an earlier run left unfinished (its journal below says what is left).
2. Hash every subject with the pipeline's key (ledger.py) and write the hashes to the ledger. From
   here on no micro-batch that starts stores or counts the person. Wait for the batch the stream may
   have in flight (the `inFlight` document it writes before reading the ledger) to finish.
3. Scan the profiles at consistency ALL for rows whose user id or email hash is in the set. A person
   is every row that shares a user id or an email with the request: the rows' other hashes join the
   ledger and steps 2-3 repeat until no new hash appears (then nothing can re-add a found row).
4. Write the journal `erasures/<receipt id>` with the found rows' contribution to every aggregate
   (deltas.dimension_keys, negated) BEFORE deleting anything.
5. Delete the rows at ALL, `USING TIMESTAMP` after the row's own (a record stamped in the future is
   deleted too); apply the journal's deltas to `aggregates`, each document guarded by
   `appliedErasure != <receipt id>` (erasures never overlap: the lock; a resumed one runs before the next);
   write the audit record (its id is the receipt id, so a resumed run writes it once); mark the journal
   done, keeping only the receipt's numbers.

A crash before step 4 leaves at most ledger entries (the re-run writes them again); after it, the next
run finds the journal unfinished and completes it: rows still matching the hashes are deleted (nothing
new can match them), the guarded deltas are applied once.
"""

from __future__ import annotations

import datetime as dt
import re
import time
import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass

import structlog
from pymongo import UpdateOne
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from userpipeline.jobs import audit
from userpipeline.jobs.endpoints import Endpoints
from userpipeline.jobs.erasure import ledger
from userpipeline.jobs.stream import deltas
from userpipeline.jobs.stream.deltas import Delta, Stored
from userpipeline.jobs.stream.pseudonymize import Pseudonymizer
from userpipeline.jobs.stream.sinks.cassandra import TABLE, epoch_ms
from userpipeline.jobs.stream.sinks.mongo import AGGREGATES, HEALTH, IN_FLIGHT_ID

log = structlog.get_logger()

COLLECTION = "erasures"
LOCK_ID = "lock"
LOCK_LEASE_SECONDS = 600  # on top of the wait: how long a crashed run keeps others out
MAX_ROUNDS = 5
POLL_SECONDS = 0.5
UUID = re.compile(r"^[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
_IDENTIFIER = re.compile(r"^[a-z][a-z0-9_]{0,47}$")


class ErasureError(RuntimeError):
    """The erasure cannot go on now; the message says what to do."""


@dataclass(frozen=True)
class Request:
    user_ids: tuple[str, ...] = ()
    emails: tuple[str, ...] = ()

    @property
    def subjects(self) -> int:
        return len(self.user_ids) + len(self.emails)


@dataclass(frozen=True)
class Receipt:
    """What an erasure did, without personal data."""

    id: str
    at: dt.datetime
    key_id: str
    subjects: int
    rows_deleted: int
    aggregates_adjusted: int
    audit_id: str

    def text(self) -> str:
        return (f"erasure receipt {self.id} at {self.at:%Y-%m-%d %H:%M:%S} UTC: {self.subjects} subjects, "
                f"{self.rows_deleted} profiles deleted (consistency ALL), {self.aggregates_adjusted} aggregate documents "
                f"adjusted, key id {self.key_id}, audit record {self.audit_id}")


@dataclass(frozen=True)
class Found:
    """A stored profile of an erased person: its key, its hashes and what it contributes to the aggregates."""

    user_id: str
    email_hmac: str | None
    stored: Stored


def parse_subjects(lines: Iterable[str]) -> Request:
    """One subject per line: an email (it has an @) or a user id (a UUID); blank lines and # comments skipped."""
    user_ids, emails = [], []
    for number, line in enumerate(lines, 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        if "@" in text:
            emails.append(text)
        elif UUID.match(text):
            user_ids.append(text)
        else:
            raise ErasureError(f"line {number} is neither an email nor a user id (a UUID); fix or remove it")
    return Request(tuple(user_ids), tuple(emails))


def removed(found: Iterable[Found]) -> list[Delta]:
    """The found rows' contribution to each aggregate document, negated."""
    totals: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for row in found:
        for key in deltas.dimension_keys(row.stored):
            totals[key][0] -= 1
            totals[key][1] -= row.stored.age
    return [Delta(dim, key, count, age_sum) for (dim, key), (count, age_sum) in sorted(totals.items())]


class Profiles:
    """The profiles table at consistency ALL: every replica answers every read and delete."""

    COLUMNS = ("user_id", "email_hmac", "gender", "nat", "age", "email_domain", "event_time", "source_partition",
               "source_offset")

    def __init__(self, endpoints: Endpoints, key: bytes):
        from cassandra import ConsistencyLevel
        from cassandra.cluster import EXEC_PROFILE_DEFAULT, ExecutionProfile
        from cassandra.policies import RoundRobinPolicy

        if not _IDENTIFIER.match(endpoints.cassandra_keyspace):
            raise ErasureError(f"keyspace {endpoints.cassandra_keyspace!r} is not a plain CQL identifier (a-z, 0-9, _)")
        self.key = key
        self.keyspace = endpoints.cassandra_keyspace
        profile = ExecutionProfile(load_balancing_policy=RoundRobinPolicy(), consistency_level=ConsistencyLevel.ALL,
                                   request_timeout=60)
        self.cluster = endpoints.cassandra_cluster(connect_timeout=10, execution_profiles={EXEC_PROFILE_DEFAULT: profile})
        self.session = self.cluster.connect()

    def _exists(self) -> bool:
        keyspace = self.cluster.metadata.keyspaces.get(self.keyspace)
        return keyspace is not None and TABLE in keyspace.tables

    def matching(self, user_hashes: set[str], email_hashes: set[str]) -> list[Found]:
        """Every row whose user id hash or email hash is given: one scan of the table, however many subjects."""
        from cassandra.query import SimpleStatement

        if not self._exists():
            return []
        statement = SimpleStatement(f"SELECT {', '.join(self.COLUMNS)} FROM {self.keyspace}.{TABLE}", fetch_size=5000)
        found = []
        for row in self.session.execute(statement):
            if row.email_hmac in email_hashes or ledger.user_digest(self.key, row.user_id) in user_hashes:
                found.append(Found(row.user_id, row.email_hmac, Stored(
                    row.user_id, row.gender, row.nat, row.age, row.email_domain, epoch_ms(row.event_time),
                    row.source_partition, row.source_offset)))
        return found

    def delete(self, found: list[Found]) -> None:
        """Delete the rows, each with a timestamp after its own write (the stream writes with the record's)."""
        from cassandra.concurrent import execute_concurrent_with_args

        if not found:
            return
        statement = self.session.prepare(f"DELETE FROM {self.keyspace}.{TABLE} USING TIMESTAMP ? WHERE user_id = ?")
        now_us = time.time_ns() // 1000
        args = [(max(now_us, row.stored.event_time_ms * 1000 + 1), row.user_id) for row in found]
        execute_concurrent_with_args(self.session, statement, args, concurrency=32, raise_on_first_error=True)

    def close(self) -> None:
        self.cluster.shutdown()


class _Lock:
    """One erasure at a time: a document with a lease, taken over only once the lease has ended."""

    def __init__(self, db: Database, lease_seconds: float):
        self.collection = db[COLLECTION]
        self.lease_seconds = lease_seconds
        self.owner = uuid.uuid4().hex

    def __enter__(self) -> _Lock:
        now = dt.datetime.now(dt.timezone.utc)
        lease = {"owner": self.owner, "until": now + dt.timedelta(seconds=self.lease_seconds)}
        try:
            self.collection.insert_one({"_id": LOCK_ID, **lease})
        except DuplicateKeyError:
            taken = self.collection.update_one({"_id": LOCK_ID, "until": {"$lt": now}}, {"$set": lease})
            if taken.matched_count == 0:
                raise ErasureError("another `userpipeline erase` is running (or crashed less than its lease ago); "
                                   "run this one again when it has finished") from None
        return self

    def __exit__(self, *exc) -> None:
        self.collection.delete_one({"_id": LOCK_ID, "owner": self.owner})


class Eraser:
    def __init__(self, db: Database, profiles: Profiles, pseudonymizer: Pseudonymizer, wait_seconds: float = 120):
        self.db = db
        self.profiles = profiles
        self.pseudonymizer = pseudonymizer
        self.wait_seconds = wait_seconds

    def erase(self, request: Request) -> Receipt:
        with _Lock(self.db, self.wait_seconds + LOCK_LEASE_SECONDS):
            for doc in list(self.db[COLLECTION].find({"done": False})):
                log.info("erase.resumed", receipt_id=doc["_id"])
                self._complete(doc, None)
            return self._erase(request)

    def _hashes(self, request: Request) -> tuple[set[str], set[str]]:
        if request.emails and "email" not in self.pseudonymizer.fields:
            raise ErasureError("spec.privacy.pseudonymize does not list email, so profiles hold no email hash to find: "
                               "erase by --user-id instead")
        emails = {self.pseudonymizer.digest("email", e) for e in request.emails}
        if None in emails:
            raise ErasureError("an email is empty; remove it and run again")
        return {ledger.user_digest(self.pseudonymizer.key, u) for u in request.user_ids}, emails  # type: ignore[return-value]

    def _erase(self, request: Request) -> Receipt:
        receipt_id, at = uuid.uuid4().hex, dt.datetime.now(dt.timezone.utc)
        users, emails = self._hashes(request)
        deadline = time.monotonic() + self.wait_seconds
        found: list[Found] = []
        for _ in range(MAX_ROUNDS):
            ledger.record(self.db[ledger.COLLECTION], self.pseudonymizer.key_id, receipt_id, users, emails)
            self._wait_for_stream(deadline)
            found = self.profiles.matching(users, emails)
            more_users = {ledger.user_digest(self.pseudonymizer.key, f.user_id) for f in found} - users
            more_emails = {f.email_hmac for f in found if f.email_hmac} - emails
            if not more_users and not more_emails:
                break
            users |= more_users
            emails |= more_emails
        else:
            raise ErasureError(f"the people's rows kept changing over {MAX_ROUNDS} rounds; run erase again")
        journal = {"_id": receipt_id, "at": at, "keyId": self.pseudonymizer.key_id, "subjects": request.subjects,
                   "userHashes": sorted(users), "emailHashes": sorted(emails), "rows": len(found),
                   "deltas": [asdict(d) for d in removed(found)], "done": False}
        self.db[COLLECTION].insert_one(journal)
        return self._complete(journal, found)

    def _complete(self, journal: dict, found: list[Found] | None) -> Receipt:
        """Step 5 of an erasure whose journal exists: delete, subtract once, audit, done."""
        receipt_id = journal["_id"]
        if found is None:  # resumed: whatever still matches the hashes is what is left to delete
            found = self.profiles.matching(set(journal["userHashes"]), set(journal["emailHashes"]))
        self.profiles.delete(found)
        journal_deltas = [Delta(**d) for d in journal["deltas"]]
        self._apply(receipt_id, journal_deltas)
        at = journal["at"] if journal["at"].tzinfo else journal["at"].replace(tzinfo=dt.timezone.utc)
        record = audit.AuditRecord(
            action="erase", store=f"cassandra:{TABLE}", count=journal["rows"], at=at, id=receipt_id,
            rule={"request": "right to erasure", "subjects": journal["subjects"], "consistency": "ALL",
                  "aggregatesAdjusted": len(journal_deltas), "keyId": journal["keyId"]})
        if self.db[audit.COLLECTION].find_one({"_id": receipt_id}, {"_id": 1}) is None:  # once, also when resumed
            audit.write(self.db, record)
        receipt = Receipt(receipt_id, at, journal["keyId"], journal["subjects"], journal["rows"], len(journal_deltas), receipt_id)
        self.db[COLLECTION].update_one({"_id": receipt_id}, {
            "$set": {"done": True, "aggregatesAdjusted": len(journal_deltas), "auditId": receipt_id},
            "$unset": {"deltas": "", "userHashes": "", "emailHashes": ""}})
        log.info("erase.done", receipt_id=receipt_id, subjects=receipt.subjects, rows_deleted=receipt.rows_deleted,
                 aggregates_adjusted=receipt.aggregates_adjusted)
        return receipt

    def _apply(self, receipt_id: str, journal_deltas: list[Delta]) -> None:
        if not journal_deltas:
            return
        now = dt.datetime.now(dt.timezone.utc)
        self.db[AGGREGATES].bulk_write([
            UpdateOne({"_id": d.doc_id, "appliedErasure": {"$ne": receipt_id}}, {
                "$inc": {"count": d.count, "ageSum": d.age_sum}, "$set": {"appliedErasure": receipt_id, "updatedAt": now}})
            for d in journal_deltas], ordered=True)

    def _wait_for_stream(self, deadline: float) -> None:
        """Return once the micro-batch in flight now (if any) has finished: it may have read the ledger before us."""
        health = self.db[HEALTH]
        doc = health.find_one({"_id": IN_FLIGHT_ID})
        if doc is None:
            return
        while (current := health.find_one({"_id": IN_FLIGHT_ID})) is not None and current["token"] == doc["token"]:
            if time.monotonic() > deadline:
                raise ErasureError(
                    f"the stream's micro-batch {doc['token']} has not finished within {self.wait_seconds:.0f}s (is the "
                    "stream stopped or failing? `userpipeline status`). The ledger already keeps these people out of new "
                    "batches; run erase again once the stream has finished that batch")
            time.sleep(POLL_SECONDS)
