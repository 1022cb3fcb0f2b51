"""Keyed pseudonyms for PII: HMAC-SHA256 under a secret key, as lower-case hex.

The same input and key give the same pseudonym, so records of one person stay linkable without the
plaintext; without the key nobody can test a guessed email against the stored value. Inputs are
normalised first (emails lower-cased, everything trimmed) so trivial spelling differences do not split
one person in two. The key id is stored next to each pseudonym, so a key rotation is visible.

Key ring and rotation (docs/privacy.md): one active key makes every new pseudonym; retired keys
(`USERPIPELINE_HMAC_RETIRED_KEYS`, a JSON object `{"<key id>": "<key>"}`) are kept so that rows and
erasure-ledger entries made under them stay matchable: erasure hashes an email under every key of the
ring, and the stream checks each record against the ledger under every key. A key id names a key
without revealing it; when none is configured it is derived from the key (`key_id_of`).

In Spark the HMAC runs as a Python UDF whose closure holds the key: unlike a literal in the query plan,
it never appears in plan strings, error messages or logs.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from userpipeline.jobs.endpoints import Endpoints

if TYPE_CHECKING:  # pyspark only where Spark runs: the CLI and the purge (application image) import the keys
    from pyspark.sql import Column

FIELDS = ("email", "phone", "cell", "address", "name", "dob")


KEY_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class MissingKeyError(RuntimeError):
    """No HMAC key configured: the stream refuses to store PII without pseudonymisation."""


class KeyRingError(ValueError):
    """The configured keys cannot be used (the message names the key id, never a key)."""


def key_id_of(key: bytes, prefix: str = "local") -> str:
    """An id that follows the key: `<prefix>-` and 12 hex digits of an HMAC of a fixed text under the key.

    Equal keys give equal ids, a new key a new id; the id reveals nothing about the key (it is not a hash
    of the key itself, and nobody without the key can compute it)."""
    return f"{prefix}-{hmac.new(key, b'userpipeline key id', hashlib.sha256).hexdigest()[:12]}"


def parse_retired(text: str | None) -> tuple[tuple[str, bytes], ...]:
    """`{"<key id>": "<key>", ...}` (USERPIPELINE_HMAC_RETIRED_KEYS) -> ((id, key), ...), checked."""
    if text is None or not text.strip():
        return ()
    try:
        ring = json.loads(text)
    except ValueError:
        raise KeyRingError("USERPIPELINE_HMAC_RETIRED_KEYS is not JSON: write {\"<key id>\": \"<key>\", ...}") from None
    if not isinstance(ring, dict):
        raise KeyRingError("USERPIPELINE_HMAC_RETIRED_KEYS must be a JSON object {\"<key id>\": \"<key>\", ...}")
    retired = []
    for key_id, key in ring.items():
        if not KEY_ID.match(key_id):
            raise KeyRingError(f"retired key id {key_id[:64]!r}: use letters, digits, '.', '_' or '-' (at most 64)")
        if not isinstance(key, str) or not key.strip():
            raise KeyRingError(f"retired key {key_id!r} is empty or not a string")
        retired.append((key_id, key.strip().encode()))
    return tuple(retired)


def normalise(field_name: str, value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    return value.lower() if field_name == "email" else value


@dataclass(frozen=True)
class Pseudonymizer:
    key: bytes = field(repr=False)  # the active key: every new pseudonym is made with it
    key_id: str
    fields: tuple[str, ...] = FIELDS  # the ones spec.privacy.pseudonymize lists; the others are not stored at all
    retired: tuple[tuple[str, bytes], ...] = field(default=(), repr=False)  # (key id, key): matched, never used to write

    def __post_init__(self) -> None:
        ids = [self.key_id, *(key_id for key_id, _ in self.retired)]
        if len(set(ids)) != len(ids):
            raise KeyRingError(f"key id {next(i for i in ids if ids.count(i) > 1)!r} names two keys: each key needs its own id")

    @classmethod
    def from_endpoints(cls, endpoints: Endpoints, fields: tuple[str, ...] = FIELDS) -> Pseudonymizer:
        if endpoints.hmac_key is None or not endpoints.hmac_key.get_secret_value():
            raise MissingKeyError(
                "USERPIPELINE_HMAC_KEY is not set: the stream never stores email, phone, cell, address, name or date of birth "
                "in plaintext "
                "and needs the HMAC key to pseudonymise them. Set USERPIPELINE_HMAC_KEY (and USERPIPELINE_HMAC_KEY_ID); "
                "`userpipeline up` generates one locally, the chart reads it from the Secret spec.privacy.keySecret."
            )
        key = endpoints.hmac_key.get_secret_value().encode()
        key_id = endpoints.hmac_key_id or key_id_of(key, "key")
        if not KEY_ID.match(key_id):
            raise KeyRingError(f"key id {key_id[:64]!r}: use letters, digits, '.', '_' or '-' (at most 64)")
        secret = endpoints.hmac_retired_keys
        retired = parse_retired(secret.get_secret_value() if secret is not None else None)
        # The active key listed among the retired ones too (a rotation half done): it is the active one. The active
        # id naming another key among them is refused (__post_init__): one id, one key.
        retired = tuple((rid, rkey) for rid, rkey in retired if rkey != key)
        return cls(key, key_id, tuple(fields), retired)

    @property
    def ring(self) -> tuple[tuple[str, bytes], ...]:
        """Every key, the active one first: (key id, key)."""
        return ((self.key_id, self.key), *self.retired)

    def digests(self, field_name: str, value: str | None) -> dict[str, str]:
        """The pseudonym of a value under every key of the ring, by key id (empty when the value is)."""
        value = normalise(field_name, value)
        if value is None or field_name not in self.fields:
            return {}
        return {key_id: hmac.new(key, value.encode("utf-8"), hashlib.sha256).hexdigest() for key_id, key in self.ring}

    def digest(self, field_name: str, value: str | None) -> str | None:
        """The pseudonym of one field value, or None when the value is empty or the field is not kept."""
        value = normalise(field_name, value)
        if value is None or field_name not in self.fields:
            return None
        return hmac.new(self.key, value.encode("utf-8"), hashlib.sha256).hexdigest()

    def fingerprint(self, data: bytes) -> str:
        """A keyed hash of raw bytes (a dead letter's payload): equal payloads match, nobody can guess one."""
        return hmac.new(self.key, b"payload\x00" + data, hashlib.sha256).hexdigest()

    def column(self, email: Column, phone: Column, cell: Column, address: Column, name: Column, dob: Column) -> Column:
        """A struct column `<field>_hmac` for each of FIELDS, computed in the executors (`dob` as yyyy-MM-dd text)."""
        return _udf(self)(email, phone, cell, address, name, dob)


def result_type():
    """`<field>_hmac` per field, and `email_hmac_retired`: the email's pseudonyms under the retired keys (empty
    without any), for the erasure check only (the ledger may hold hashes made under an earlier key); never stored."""
    from pyspark.sql import types as T

    return T.StructType([*(T.StructField(f"{name}_hmac", T.StringType()) for name in FIELDS),
                         T.StructField("email_hmac_retired", T.ArrayType(T.StringType()))])


def _udf(pseudonymizer: Pseudonymizer) -> Callable[..., Column]:
    from pyspark.sql import functions as F

    def pseudonyms(*values):  # no type hints: Spark would try to read them as a pandas UDF signature
        digests = tuple(pseudonymizer.digest(name, value) for name, value in zip(FIELDS, values))
        older = list(pseudonymizer.digests("email", values[0]).values())[1:] if pseudonymizer.retired else []
        return (*digests, older)

    return F.udf(pseudonyms, result_type(), useArrow=False)
