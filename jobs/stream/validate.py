"""Which raw records break the data contract, and why: one reason code per rejected record.

Checks run in a fixed order and the first failing one names the reason, so each broken record gets
exactly one code from docs/data-contract.md. Everything is a Spark column expression with `try_`
functions: no input, however bad, can raise and stop the query. Details never quote the value (it may
hold PII); the dead-letter record carries the payload itself.
"""

from __future__ import annotations

from datetime import date
from enum import Enum

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from userpipeline.jobs.stream.schema import CORRUPT_COLUMN, PARSE_SCHEMA, STRICT_STRING_PATHS

MAX_VALUE_BYTES = 1024 * 1024
MAX_AGE_YEARS = 150

# The one place for the field limits (docs/data-contract.md shows this table; a test keeps both equal):
# the longest text, in characters, each field of a user may have. A stored row stays a few KiB at most,
# far below what Cassandra refuses, whatever the producer sends.
FIELD_LIMITS = {
    "name.title": 64,
    "name.first": 256,
    "name.last": 256,
    "gender": 32,
    "email": 254,
    "phone": 64,
    "cell": 64,
    "location.street.number": 32,
    "location.street.name": 256,
    "location.city": 256,
    "location.state": 256,
    "location.postcode": 32,
    "location.country": 128,
    "nat": 8,
    "dob.date": 64,
    "registered.date": 64,
}
# `login.uuid`: a UUID in its 36-character text form (any version, either case); stored in lower case.
UUID_PATTERN = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"


class Reason(str, Enum):
    oversized = "oversized"
    malformed_json = "malformed_json"
    not_an_object = "not_an_object"
    wrong_type = "wrong_type"
    missing_id = "missing_id"
    invalid_id = "invalid_id"
    field_too_long = "field_too_long"
    missing_dob = "missing_dob"
    invalid_dob = "invalid_dob"


# The reasons checked before the id is known to be valid: a record rejected for any other reason has a valid
# `login.uuid`, and as its user's newest version it removes the stored one (transform.classify, deltas.Removal).
ID_REASONS = tuple(r.value for r in (Reason.oversized, Reason.malformed_json, Reason.not_an_object, Reason.wrong_type,
                                     Reason.missing_id, Reason.invalid_id))


def parse(raw: DataFrame) -> DataFrame:
    """Add `text` (the value, unless oversized), `json` (a VARIANT, null if not JSON) and `user` (the typed struct)."""
    small = F.octet_length("value") <= MAX_VALUE_BYTES
    text = F.when(small, F.col("value").cast("string"))
    return (
        raw.withColumn("text", text)
        .withColumn("json", F.try_parse_json("text"))
        .withColumn("user", F.from_json("text", PARSE_SCHEMA, {"mode": "PERMISSIVE", "columnNameOfCorruptRecord": CORRUPT_COLUMN}))
        .withColumn("dob_ts", F.try_to_timestamp(F.col("user.dob.date")))
        .withColumn("dob_date", F.to_date("dob_ts"))
    )


def _not_a_string(path: str) -> Column:
    """True when the JSON at `path` is present and neither a string nor null."""
    kind = F.schema_of_variant(F.try_variant_get("json", path, "variant"))
    return kind.isNotNull() & ~kind.isin("STRING", "VOID")


def _checks(as_of: date | Column) -> list[tuple[Reason, Column, Column]]:
    """(reason, failing condition, detail) in the order they are tried."""
    strict = [(path, _not_a_string(path)) for path in STRICT_STRING_PATHS]
    uuid = F.col("user.login.uuid")
    dob = F.col("dob_date")
    day = as_of if isinstance(as_of, Column) else F.lit(as_of)
    oldest = F.add_months(day, -12 * MAX_AGE_YEARS)  # 29 February -> 28 February, as years_before
    return [
        (Reason.oversized, F.octet_length("value") > MAX_VALUE_BYTES,
         F.format_string(f"value has %d bytes, over the limit of {MAX_VALUE_BYTES}", F.octet_length("value"))),
        (Reason.malformed_json, F.col("json").isNull(), F.lit("value is empty or not valid JSON")),
        (Reason.not_an_object, ~F.col("text").rlike(r"^\s*\{"), F.lit("the JSON value is not an object")),
        (Reason.wrong_type, F.col(f"user.{CORRUPT_COLUMN}").isNotNull(),
         F.lit("a field does not fit the schema (e.g. text where an object or an integer is expected)")),
        *[(Reason.wrong_type, bad, F.lit(f"{path[2:]} must be a string")) for path, bad in strict],
        (Reason.missing_id, uuid.isNull() | uuid.rlike(r"^\s*$"), F.lit("login.uuid is missing, null or blank")),
        # The length test first: Java's `$` also matches before a final line break.
        (Reason.invalid_id, (F.length(uuid) != 36) | ~uuid.rlike(UUID_PATTERN),
         F.lit("login.uuid is not a UUID (8-4-4-4-12 hexadecimal digits)")),
        *_too_long_checks(),
        (Reason.missing_dob, F.col("user.dob.date").isNull(), F.lit("dob.date is missing or null")),
        (Reason.invalid_dob, dob.isNull(), F.lit("dob.date is not a valid date")),
        (Reason.invalid_dob, dob > day, F.lit("dob.date is in the future")),
        (Reason.invalid_dob, dob < oldest, F.lit(f"dob.date is more than {MAX_AGE_YEARS} years ago")),
    ]


def _too_long_checks() -> list[tuple[Reason, Column, Column]]:
    checks = []
    for path, limit in FIELD_LIMITS.items():
        length = F.length(F.col(f"user.{path}"))
        checks.append((Reason.field_too_long, length > limit,
                       F.format_string(f"{path} has %d characters, over the limit of {limit}", length)))
    return checks


def user_id(uuid: Column) -> Column:
    """The stored user id of a valid record."""
    return F.lower(uuid)


def with_verdict(parsed: DataFrame, as_of: date | Column) -> DataFrame:
    """Add `reason` (null for a valid record) and `detail`."""
    reason: Column | None = None
    detail: Column | None = None
    for code, failing, text in _checks(as_of):
        reason = F.when(failing, F.lit(code.value)) if reason is None else reason.when(failing, F.lit(code.value))
        detail = F.when(failing, text) if detail is None else detail.when(failing, text)
    assert reason is not None and detail is not None
    return parsed.withColumn("reason", reason).withColumn("detail", detail)
