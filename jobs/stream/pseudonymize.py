"""Keyed pseudonyms for PII: HMAC-SHA256 under a secret key, as lower-case hex.

The same input and key give the same pseudonym, so records of one person stay linkable without the
plaintext; without the key nobody can test a guessed email against the stored value. Inputs are
normalised first (emails lower-cased, everything trimmed) so trivial spelling differences do not split
one person in two. The key id is stored next to each pseudonym, so a key rotation is visible.

In Spark the HMAC runs as a Python UDF whose closure holds the key: unlike a literal in the query plan,
it never appears in plan strings, error messages or logs.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass, field

from pyspark.sql import Column
from pyspark.sql import functions as F
from pyspark.sql import types as T

from userpipeline.jobs.endpoints import Endpoints

FIELDS = ("email", "phone", "cell", "address", "name", "dob")


class MissingKeyError(RuntimeError):
    """No HMAC key configured: the stream refuses to store PII without pseudonymisation."""


def normalise(field_name: str, value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    return value.lower() if field_name == "email" else value


@dataclass(frozen=True)
class Pseudonymizer:
    key: bytes = field(repr=False)
    key_id: str
    fields: tuple[str, ...] = FIELDS  # the ones spec.privacy.pseudonymize lists; the others are not stored at all

    @classmethod
    def from_endpoints(cls, endpoints: Endpoints, fields: tuple[str, ...] = FIELDS) -> Pseudonymizer:
        if endpoints.hmac_key is None or not endpoints.hmac_key.get_secret_value():
            raise MissingKeyError(
                "USERPIPELINE_HMAC_KEY is not set: the stream never stores email, phone, cell, address, name or date of birth "
                "in plaintext "
                "and needs the HMAC key to pseudonymise them. Set USERPIPELINE_HMAC_KEY (and USERPIPELINE_HMAC_KEY_ID); "
                "`userpipeline up` generates one locally, the chart reads it from the Secret spec.privacy.keySecret."
            )
        return cls(endpoints.hmac_key.get_secret_value().encode(), endpoints.hmac_key_id, tuple(fields))

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


RESULT_TYPE = T.StructType([T.StructField(f"{name}_hmac", T.StringType()) for name in FIELDS])


def _udf(pseudonymizer: Pseudonymizer) -> Callable[..., Column]:
    def pseudonyms(*values):  # no type hints: Spark would try to read them as a pandas UDF signature
        return tuple(pseudonymizer.digest(name, value) for name, value in zip(FIELDS, values))

    return F.udf(pseudonyms, RESULT_TYPE, useArrow=False)
