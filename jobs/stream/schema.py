"""The explicit schema of a raw-topic value (a randomuser API 1.4 user) and of the Kafka source rows.

Only the fields the stream uses are declared; others are ignored. Spark's JSON reader turns a JSON
number into its text for a `string` field, so `postcode` (an integer for most nationalities, a string
for others) and `street.number` read the same either way. A value that cannot fit a declared struct
or integer (say `name` as a string, `dob.age` as a word) marks the record corrupt: that is `wrong_type`.
"""

from __future__ import annotations

from pyspark.sql import types as T

CORRUPT_COLUMN = "_corrupt_record"

# Fields that must be JSON strings when present: Spark would silently turn a number or an object into
# text, which is harmless for a postcode but not for an id, a date or an email.
STRICT_STRING_PATHS = ("$.login.uuid", "$.dob.date", "$.email")


def _struct(**fields: T.DataType) -> T.StructType:
    return T.StructType([T.StructField(name, data_type) for name, data_type in fields.items()])


S, I = T.StringType(), T.IntegerType()

USER_SCHEMA = _struct(
    gender=S,
    name=_struct(title=S, first=S, last=S),
    location=_struct(street=_struct(number=S, name=S), city=S, state=S, country=S, postcode=S),
    email=S,
    login=_struct(uuid=S),
    dob=_struct(date=S, age=I),
    registered=_struct(date=S, age=I),
    phone=S,
    cell=S,
    nat=S,
)

# USER_SCHEMA plus the column where from_json (mode PERMISSIVE) puts the text of a record that does not fit.
PARSE_SCHEMA = T.StructType([*USER_SCHEMA.fields, T.StructField(CORRUPT_COLUMN, S)])

# Columns of Spark's Kafka source the job keeps.
KAFKA_COLUMNS = ("key", "value", "topic", "partition", "offset", "timestamp")
