"""From Kafka rows to classified, pseudonymised profile rows: one Spark projection, no shuffle, no state.

`classify` gives every input row a `status`: `rejected` (a contract reason; goes to the dead-letter
topic), `filtered` (younger than spec.privacy.minimumAge; counted, never stored) or `valid`. Plaintext
email, phone, cell, address, full name and date of birth only exist inside this projection: the output
carries their HMACs (and the age, computed from the date of birth here). A rejected row keeps its raw
value in `payload`, for the dead-letter sink to summarise without its contents (sinks/deadletter.py).

Ages are computed against `as_of`: the stream passes `record_date()`, the UTC date of each record's Kafka
timestamp, so an age depends on the record alone, never on when it is processed: re-running a batch after
midnight, or replaying the topic months later, gives the same ages (docs/data-contract.md). Tests may pass
a fixed date.

`user_id` is set for valid records and also for those that are filtered or rejected with a valid
`login.uuid` (any reason after `invalid_id`): a newer such record removes the stored version of its user
(deltas.Removal). Nothing else of a record that is not valid leaves this projection, except the rejected
record's raw value for the dead-letter sink.
"""

from __future__ import annotations

from datetime import date

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from userpipeline.jobs.stream import validate
from userpipeline.jobs.stream.pseudonymize import FIELDS, Pseudonymizer

REJECTED, FILTERED, VALID = "rejected", "filtered", "valid"

# What the driver collects per valid row (deltas.Profile has the same fields).
PROFILE_COLUMNS = (
    "user_id", "gender", "nat", "age", "api_age", "email_domain",
    "email_hmac", "phone_hmac", "cell_hmac", "address_hmac", "name_hmac", "dob_hmac", "registered_ms", "event_time_ms",
    "source_partition", "source_offset",
)
# Collected next to them for the erasure check only, never stored: the email's pseudonyms under retired keys.
ERASURE_COLUMNS = ("email_hmac_retired",)


def record_date() -> Column:
    """The UTC date of the record's Kafka timestamp (the session's time zone is UTC, job.build_session)."""
    return F.to_date(F.col("timestamp"))


def day_column(as_of: date | Column) -> Column:
    return as_of if isinstance(as_of, Column) else F.lit(as_of)


def age_on(born: Column, as_of: date | Column) -> Column:
    """Completed years on `as_of`: the birthday itself counts (born 2008-03-01 is 18 on 2026-03-01)."""
    day = day_column(as_of)
    before_birthday = (F.month(born) > F.month(day)) | ((F.month(born) == F.month(day)) & (F.dayofmonth(born) > F.dayofmonth(day)))
    return (F.year(day) - F.year(born) - F.when(before_birthday, 1).otherwise(0)).cast("int")


def _text(column: str) -> Column:
    """Trimmed text, null when empty."""
    return F.nullif(F.trim(F.col(column)), F.lit(""))


def full_name() -> Column:
    return F.nullif(F.trim(F.concat_ws(" ", _text("user.name.first"), _text("user.name.last"))), F.lit(""))


def full_address() -> Column:
    """"number street, city, state, postcode, country" (missing parts skipped); only its HMAC is stored."""
    street = F.nullif(F.concat_ws(" ", _text("user.location.street.number"), _text("user.location.street.name")), F.lit(""))
    parts = [street, *(_text(f"user.location.{part}") for part in ("city", "state", "postcode", "country"))]
    return F.nullif(F.concat_ws(", ", *parts), F.lit(""))


def email_domain() -> Column:
    email = _text("user.email")
    return F.when(F.instr(email, "@") > 0, F.nullif(F.lower(F.substring_index(email, "@", -1)), F.lit("")))


def classify(raw: DataFrame, as_of: date | Column, minimum_age: int, pseudonymizer: Pseudonymizer) -> DataFrame:
    """Kafka rows (key, value, topic, partition, offset, timestamp) -> one classified row each."""
    checked = (
        validate.with_verdict(validate.parse(raw), as_of)
        .withColumn("age", age_on(F.col("dob_date"), as_of))
        .withColumn("status", F.when(F.col("reason").isNotNull(), REJECTED)
                    .when(F.col("age") < minimum_age, FILTERED).otherwise(VALID))
        .withColumn("pseudonyms", pseudonymizer.column(
            _text("user.email"), _text("user.phone"), _text("user.cell"), full_address(), full_name(),
            F.date_format("dob_date", "yyyy-MM-dd")))
    )
    valid, rejected = F.col("status") == VALID, F.col("status") == REJECTED
    # A filtered record, or one rejected after its id passed (validate.ID_REASONS), still names its user.
    named = valid | (F.col("status") == FILTERED) | (rejected & ~F.col("reason").isin(*validate.ID_REASONS))

    def kept(column: Column) -> Column:
        return F.when(valid, column)

    return checked.select(
        "status",
        "reason",
        "detail",
        "key",
        "topic",
        F.col("partition").alias("source_partition"),
        F.col("offset").alias("source_offset"),
        F.unix_millis("timestamp").alias("event_time_ms"),
        F.when(rejected, F.col("value")).alias("payload"),
        F.when(named, validate.user_id(F.col("user.login.uuid"))).alias("user_id"),
        kept(F.lower(_text("user.gender"))).alias("gender"),
        kept(F.upper(_text("user.nat"))).alias("nat"),
        kept(F.col("age")).alias("age"),
        kept(F.col("user.dob.age")).alias("api_age"),
        kept(email_domain()).alias("email_domain"),
        *(kept(F.col(f"pseudonyms.{name}_hmac")).alias(f"{name}_hmac") for name in FIELDS),
        kept(F.col("pseudonyms.email_hmac_retired")).alias("email_hmac_retired"),
        kept(F.unix_millis(F.try_to_timestamp(F.col("user.registered.date")))).alias("registered_ms"),
    )
