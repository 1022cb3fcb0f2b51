"""`userpipeline erase`: delete people from Cassandra, subtract them from the aggregates once, keep them out.

One run erases a set of subjects (user ids and emails), in this order:

1. Take the erasure lock (one erase at a time, a lease so a crashed run does not block forever), then
   finish any erasure an earlier run left unfinished (its journal below says what is left).
2. Hash every subject under every key of the ring (ledger.py; the active key and the retired ones) and
   write the hashes to the ledger. From here on no micro-batch that starts stores or counts the person.
   Wait for the batch the stream may have in flight (the `inFlight` document it writes before reading
   the ledger) to finish.
3. Find the rows at consistency ALL, without scanning the table: user ids by primary key, emails through
   the secondary index on `email_hmac` (lookup.py), one lookup per email and key id, so rows made under
   a retired key are found too. A person is every row that shares a user id or an email with the
   request: the rows' user ids (hashed under every key) and email hashes (under the row's key) join the
   ledger and steps 2-3 repeat until nothing new appears (then nothing can re-add a found row).
4. Write the journal `erasures/<receipt id>` with the found rows' contribution to every aggregate
   (deltas.dimension_keys, negated) BEFORE deleting anything.
5. Delete the rows at ALL, `USING TIMESTAMP` after the row's own (a record stamped in the future is
   deleted too); apply the journal's deltas to `aggregates`, each document guarded by
   `appliedErasure != <receipt id>` (erasures never overlap: the lock; a resumed one runs before the next);
   write the audit record (its id is the receipt id, so a resumed run writes it once); mark the journal
   done, keeping only the receipt's numbers.

A crash before step 4 leaves at most ledger entries (the re-run writes them again); after it, the next
run finds the journal unfinished and completes it: rows still matching the hashes are deleted (nothing
new can match them), the guarded deltas are applied once. A resumed run knows the people only by their
hashes (the journal holds no user id), so it finds their rows with one scan of the table.
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
from userpipeline.jobs.erasure import ledger, lookup
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
    key_id: str  # the active key's
    subjects: int
    rows_deleted: int
    aggregates_adjusted: int
    audit_id: str
    key_ids: tuple[str, ...] = ()  # every key id the subjects were looked up under (the ring), active first

    def text(self) -> str:
        keys = f"key id {self.key_id}" if len(self.key_ids) <= 1 else f"key ids {', '.join(self.key_ids)} (active first)"
        return (f"erasure receipt {self.id} at {self.at:%Y-%m-%d %H:%M:%S} UTC: {self.subjects} subjects, "
                f"{self.rows_deleted} profiles deleted (consistency ALL), {self.aggregates_adjusted} aggregate documents "
                f"adjusted, {keys}, audit record {self.audit_id}")


@dataclass(frozen=True)
class Found:
    """A stored profile of an erased person: its key, its hashes and what it contributes to the aggregates."""

    user_id: str
    email_hmac: str | None
    stored: Stored
    key_id: str | None = None  # the key that made the row's hashes (its hmac_key_id)


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

    COLUMNS = ("user_id", "email_hmac", "hmac_key_id", "gender", "nat", "age", "email_domain", "event_time",
               "source_partition", "source_offset")
    LOOKUP_CHUNK = 100

    def __init__(self, endpoints: Endpoints, pseudonymizer: Pseudonymizer):
        from cassandra import ConsistencyLevel
        from cassandra.cluster import EXEC_PROFILE_DEFAULT, ExecutionProfile
        from cassandra.policies import RoundRobinPolicy

        if not _IDENTIFIER.match(endpoints.cassandra_keyspace):
            raise ErasureError(f"keyspace {endpoints.cassandra_keyspace!r} is not a plain CQL identifier (a-z, 0-9, _)")
        self.keys = [key for _, key in pseudonymizer.ring]
        self.keyspace = endpoints.cassandra_keyspace
        profile = ExecutionProfile(load_balancing_policy=RoundRobinPolicy(), consistency_level=ConsistencyLevel.ALL,
                                   request_timeout=60)
        self.cluster = endpoints.cassandra_cluster(connect_timeout=10, execution_profiles={EXEC_PROFILE_DEFAULT: profile})
        self.session = self.cluster.connect()
        self.scans = 0  # full scans of the table (the resume path, or no usable email index): tests count them

    def _exists(self) -> bool:
        keyspace = self.cluster.metadata.keyspaces.get(self.keyspace)
        return keyspace is not None and TABLE in keyspace.tables

    @staticmethod
    def _found(row) -> Found:
        return Found(row.user_id, row.email_hmac, Stored(
            row.user_id, row.gender, row.nat, row.age, row.email_domain, epoch_ms(row.event_time),
            row.source_partition, row.source_offset), row.hmac_key_id)

    def find(self, user_ids: set[str], email_hashes: set[str]) -> list[Found]:
        """The rows of these user ids (primary key) and email hashes (the `email_hmac` index), no scan.

        Without a usable index (an older table the stream has not upgraded yet, or an index still being
        built) the emails are found with one scan instead, and the log says so."""
        from cassandra import InvalidRequest, ReadFailure
        from cassandra.concurrent import execute_concurrent_with_args

        if not self._exists():
            return []
        table = f"{self.keyspace}.{TABLE}"
        found: dict[str, Found] = {}
        ids = sorted(user_ids)
        if ids:
            by_id = self.session.prepare(f"SELECT {', '.join(self.COLUMNS)} FROM {table} WHERE user_id IN ?")
            chunks = [(ids[i:i + self.LOOKUP_CHUNK],) for i in range(0, len(ids), self.LOOKUP_CHUNK)]
            for result in execute_concurrent_with_args(self.session, by_id, chunks, concurrency=8, raise_on_first_error=True):
                found.update((row.user_id, self._found(row)) for row in result.result_or_exc)
        if email_hashes:
            try:
                lookup.ensure_email_index(self.session, self.keyspace)
                by_email = self.session.prepare(f"SELECT {', '.join(self.COLUMNS)} FROM {table} WHERE email_hmac = ?")
                results = execute_concurrent_with_args(self.session, by_email, [(h,) for h in sorted(email_hashes)],
                                                       concurrency=8, raise_on_first_error=True)
                found.update((row.user_id, self._found(row)) for result in results for row in result.result_or_exc)
            except (InvalidRequest, ReadFailure) as exc:
                log.warning("erase.email_index_unavailable", error=type(exc).__name__, hint="the emails are found with a scan")
                found.update((f.user_id, f) for f in self.matching(set(), email_hashes))
        return list(found.values())

    def matching(self, user_hashes: set[str], email_hashes: set[str]) -> list[Found]:
        """Every row whose user id hash (under any key of the ring) or email hash is given: one scan of the
        table, however many subjects (for a resumed erasure, which knows the people only by their hashes)."""
        from cassandra.query import SimpleStatement

        if not self._exists():
            return []
        self.scans += 1
        statement = SimpleStatement(f"SELECT {', '.join(self.COLUMNS)} FROM {self.keyspace}.{TABLE}", fetch_size=5000)
        found = []
        for row in self.session.execute(statement):
            if row.email_hmac in email_hashes or (
                    user_hashes and any(ledger.user_digest(key, row.user_id) in user_hashes for key in self.keys)):
                found.append(self._found(row))
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

    def _emails(self, request: Request) -> dict[str, set[str]]:
        """The requested emails' hashes under every key of the ring, by key id."""
        if request.emails and "email" not in self.pseudonymizer.fields:
            raise ErasureError("spec.privacy.pseudonymize does not list email, so profiles hold no email hash to find: "
                               "erase by --user-id instead")
        by_key: dict[str, set[str]] = defaultdict(set)
        for email in request.emails:
            digests = self.pseudonymizer.digests("email", email)
            if not digests:
                raise ErasureError("an email is empty; remove it and run again")
            for key_id, digest in digests.items():
                by_key[key_id].add(digest)
        return by_key

    def _user_hashes(self, user_ids: Iterable[str]) -> dict[str, set[str]]:
        """The user ids' hashes under every key of the ring, by key id."""
        return {key_id: {ledger.user_digest(key, u) for u in user_ids} for key_id, key in self.pseudonymizer.ring}

    def _erase(self, request: Request) -> Receipt:
        receipt_id, at = uuid.uuid4().hex, dt.datetime.now(dt.timezone.utc)
        user_ids = {u.strip().lower() for u in request.user_ids}  # in memory only: the ledger and journal get hashes
        emails = self._emails(request)
        deadline = time.monotonic() + self.wait_seconds
        found: list[Found] = []
        for _ in range(MAX_ROUNDS):
            users = self._user_hashes(user_ids)
            for key_id in sorted(set(users) | set(emails)):
                ledger.record(self.db[ledger.COLLECTION], key_id, receipt_id, users.get(key_id, ()), emails.get(key_id, ()))
            self._wait_for_stream(deadline)
            known = set().union(*emails.values())
            found = self.profiles.find(user_ids, known)
            more_users = {f.user_id for f in found} - user_ids
            more_emails = [f for f in found if f.email_hmac and f.email_hmac not in known]
            if not more_users and not more_emails:
                break
            user_ids |= more_users
            for row in more_emails:
                emails[row.key_id or self.pseudonymizer.key_id].add(row.email_hmac)  # type: ignore[arg-type]
        else:
            raise ErasureError(f"the people's rows kept changing over {MAX_ROUNDS} rounds; run erase again")
        journal = {"_id": receipt_id, "at": at, "keyId": self.pseudonymizer.key_id,
                   "keyIds": [key_id for key_id, _ in self.pseudonymizer.ring], "subjects": request.subjects,
                   "userHashes": sorted(set().union(*self._user_hashes(user_ids).values())),
                   "emailHashes": sorted(set().union(*emails.values())), "rows": len(found),
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
                  "aggregatesAdjusted": len(journal_deltas), "keyId": journal["keyId"],
                  "keyIds": journal.get("keyIds", [journal["keyId"]])})
        if self.db[audit.COLLECTION].find_one({"_id": receipt_id}, {"_id": 1}) is None:  # once, also when resumed
            audit.write(self.db, record)
        receipt = Receipt(receipt_id, at, journal["keyId"], journal["subjects"], journal["rows"], len(journal_deltas), receipt_id,
                          tuple(journal.get("keyIds", [journal["keyId"]])))
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
