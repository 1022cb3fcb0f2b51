"""The erasure ledger: keyed hashes of the erased people, which the stream never stores or counts again.

One MongoDB document per erased hash, never a plaintext value:
`{_id: "<kind>:<keyId>:<hash>", kind: "userId" | "email", hash, keyId, receiptId, at}`.
`email` hashes are the profiles' own `email_hmac` (the same keyed HMAC); `userId` hashes are a keyed
HMAC of `login.uuid` under a prefix of their own, so the ledger holds no user id either.

The ledger is small (one entry per erased id or email), so the stream reads all of it once per
micro-batch (`Erased.load`) and checks each valid record in the driver, where the batch's rows
already are.

Across key rotations: entries keep the id of the key that made them, and the check looks at all of
them: a record matches when its user id hashed under any key of the ring, or its email pseudonym under
any key of the ring (the stream computes those for the retired keys), is in the ledger. Hashes made
under different keys never coincide, so one set per kind is enough. `userpipeline erase` writes a
requested email or user id under every key of its ring; a hash it learns from a stored row, under that
row's key. An entry is matched only while its key is in the ring: retired keys stay there.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass, field

from pymongo import UpdateOne
from pymongo.collection import Collection

COLLECTION = "erasure_ledger"
USER_ID, EMAIL = "userId", "email"


def user_digest(key: bytes, user_id: str) -> str:
    """The keyed hash of a user id (`login.uuid`, lower-cased as the profiles' key)."""
    return hmac.new(key, b"user_id\x00" + user_id.strip().lower().encode("utf-8"), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Erased:
    """The ledger's hashes, under every key id."""

    user_hashes: frozenset[str] = field(default_factory=frozenset)
    email_hashes: frozenset[str] = field(default_factory=frozenset)

    def __bool__(self) -> bool:
        return bool(self.user_hashes or self.email_hashes)

    def covers(self, keys: Iterable[bytes], user_id: str, email_hmacs: Iterable[str | None]) -> bool:
        """Whether the record of `user_id` with these email pseudonyms (one per key of the ring) is erased."""
        if any(h is not None and h in self.email_hashes for h in email_hmacs):
            return True
        return bool(self.user_hashes) and any(user_digest(key, user_id) in self.user_hashes for key in keys)

    @classmethod
    def load(cls, ledger: Collection) -> Erased:
        users, emails = set(), set()
        for doc in ledger.find({}, {"kind": 1, "hash": 1}):
            (users if doc["kind"] == USER_ID else emails).add(doc["hash"])
        return cls(frozenset(users), frozenset(emails))


def record(ledger: Collection, key_id: str, receipt_id: str, user_hashes: Iterable[str], email_hashes: Iterable[str]) -> None:
    """Add the hashes made under `key_id` (idempotent: an entry already there keeps its first receipt and time)."""
    now = dt.datetime.now(dt.timezone.utc)
    ops = [UpdateOne({"_id": f"{kind}:{key_id}:{digest}"},
                     {"$setOnInsert": {"kind": kind, "hash": digest, "keyId": key_id, "receiptId": receipt_id, "at": now}},
                     upsert=True)
           for kind, hashes in ((USER_ID, user_hashes), (EMAIL, email_hashes)) for digest in sorted(hashes)]
    if ops:
        ledger.bulk_write(ops, ordered=False)
