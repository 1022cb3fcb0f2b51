"""The record of processing activities (GDPR Art. 30(1)) of one pipeline, generated from its UserPipeline.

Everything that depends on the configuration (retention per store, which personal fields are stored
and how, the minimum age, k-anonymity, the key's Secret) is read from the spec, so the register cannot
drift from what runs; what the code fixes (the stores, the columns and their purposes) is written here
once, and tests/privacy/test_register.py fails when it disagrees with the code. The controller's name,
contact and legal basis are the operator's to fill in: the register marks them, it does not guess them.
"""

from __future__ import annotations

from typing import Any

import yaml

from userpipeline.operator.spec.durations import parse_duration
from userpipeline.operator.spec.model import PseudonymizedField, UserPipeline

TO_FILL = "<to be filled in by the controller>"
SPARK_BATCHES_KEPT = 100  # Spark's spark.sql.streaming.minBatchesToRetain (the job keeps the default)

# Each Cassandra column and why it is stored (docs/privacy.md has the same table; a test keeps both equal
# to jobs/stream/sinks/cassandra.COLUMNS). The personal ones are stored only if spec.privacy lists them.
COLUMN_PURPOSES = {
    "user_id": "the key: one row per user, the latest version wins (login.uuid, a random id)",
    "gender": "aggregates by gender",
    "nat": "aggregates by nationality",
    "age": "aggregates by age band (completed years, computed from the date of birth before storing)",
    "api_age": "data quality: the source's own age, to check the computed one",
    "email_domain": "aggregates by email domain (the part after @, never the address)",
    "email_hmac": "linking the records of one person, erasure and access requests by email",
    "phone_hmac": "erasure and access requests by phone number",
    "cell_hmac": "erasure and access requests by mobile number",
    "address_hmac": "erasure and access requests by postal address",
    "name_hmac": "erasure and access requests by name (with the date of birth)",
    "dob_hmac": "erasure and access requests by date of birth (with the name)",
    "hmac_key_id": "which key made the HMACs of the row (key rotation)",
    "registered": "data quality: the account's registration time at the source",
    "event_time": "which version of a user is the latest (Kafka timestamp)",
    "source_partition": "tracing a row back to its raw record",
    "source_offset": "tracing a row back to its raw record",
}
# Columns that hold a personal field, by the spec.privacy.pseudonymize value that allows them.
PERSONAL_COLUMNS = {field.value: f"{field.value}_hmac" for field in PseudonymizedField}
FIELD_NAMES = {"email": "email address", "phone": "phone number", "cell": "mobile number",
               "address": "postal address (street, city, state, postcode, country)", "name": "full name",
               "dob": "date of birth"}


def _retention(duration: str, setting: str) -> dict[str, Any]:
    return {"period": duration, "seconds": parse_duration(duration), "setting": setting}


def stores(pipeline: UserPipeline) -> list[dict[str, Any]]:
    """Every place the pipeline keeps data, what it holds and how long (from the spec where it decides)."""
    spec = pipeline.spec
    topic = spec.topic.name
    return [
        {"id": "raw-topic", "store": f"Kafka topic {topic}",
         "holds": "the source's user records as received (credentials removed by the producer)",
         "personalData": "yes, in plaintext (the pipeline's input)",
         "retention": _retention(spec.topic.retention, "spec.topic.retention (Kafka retention.ms)")},
        {"id": "dead-letter-topic", "store": f"Kafka topic {topic}.dlq",
         "holds": "rejected records: reason, source position, the payload's structure (field names, types, "
                  "lengths), keyed HMACs of email, phone and cell; no value in plaintext",
         "personalData": "pseudonymised only",
         "retention": _retention(spec.retention.dead_letter, "spec.retention.deadLetter (Kafka retention.ms)")},
        {"id": "cassandra-profiles", "store": "Cassandra table profiles",
         "holds": "the latest version of each adult user: see `columns`", "personalData": "pseudonymised only",
         "retention": _retention(spec.retention.profiles, "spec.retention.profiles (table default_time_to_live)"),
         "columns": columns(pipeline)},
        {"id": "mongodb-aggregates", "store": "MongoDB collection aggregates",
         "holds": "counts and age sums per nationality, gender, age band and email domain", "personalData": "no",
         "retention": {**_retention(spec.retention.aggregates, "spec.retention.aggregates"),
                       "enforcedBy": f"the purge, on schedule {spec.retention.purge_schedule!r} (UTC)"}},
        {"id": "mongodb-operational", "store": "MongoDB collections pipeline_health, settings, batch_journal",
         "holds": "counters, the retention settings, the aggregate deltas of the batch in progress",
         "personalData": "no",
         "retention": {"period": "while the pipeline exists", "setting": "batch journals: deleted when the next "
                                                                          "batch completes"}},
        {"id": "mongodb-erasure-ledger", "store": "MongoDB collections erasure_ledger, erasures",
         "holds": "keyed hashes (with key id and receipt id) of the user ids and emails of erased people, so that "
                  "neither a re-send nor a replay brings them back; receipt numbers", "personalData": "pseudonymised only",
         "retention": {"period": "while the pipeline exists", "setting": "none (the ledger is what keeps the "
                                                                          "erasure in force)"}},
        {"id": "mongodb-audit", "store": "MongoDB collection audit",
         "holds": "one record per purge or erasure: when, which store, how many, under which rule",
         "personalData": "no",
         "retention": {"period": "kept (append-only accountability record)", "setting": "none"}},
        {"id": "checkpoints", "store": "the stream's Spark checkpoint (a volume on Kubernetes)",
         "holds": "Kafka offsets and batch ids of the stateless query", "personalData": "no",
         "retention": {"period": f"the last {SPARK_BATCHES_KEPT} micro-batches",
                       "setting": "spark.sql.streaming.minBatchesToRetain (Spark's default)"}},
        {"id": "logs", "store": "service logs (local: .userpipeline/<service>/service.log; Kubernetes: container logs)",
         "holds": "events with counts, ids, durations and error types", "personalData": "no (never logged)",
         "retention": {"period": "local: until the state directory is reset; Kubernetes: the cluster's "
                                 "container log rotation", "setting": "not set by the spec"}},
    ]


def columns(pipeline: UserPipeline) -> list[dict[str, str]]:
    listed = {field.value for field in pipeline.spec.privacy.pseudonymize}
    stored_personal = {PERSONAL_COLUMNS[name] for name in listed}
    return [{"column": name, "purpose": purpose} for name, purpose in COLUMN_PURPOSES.items()
            if name not in PERSONAL_COLUMNS.values() or name in stored_personal]


def personal_data(pipeline: UserPipeline) -> list[dict[str, str]]:
    privacy = pipeline.spec.privacy
    listed = {field.value for field in privacy.pseudonymize}
    rows = [{"category": FIELD_NAMES[name],
             "stored": f"keyed HMAC-SHA256 only (column {PERSONAL_COLUMNS[name]})" if name in listed else "not stored"}
            for name in FIELD_NAMES]
    return rows + [
        {"category": "user id (login.uuid, random)", "stored": "as is (column user_id)"},
        {"category": "age", "stored": f"as is, computed from the date of birth; users under {privacy.minimum_age} "
                                      "are not stored"},
        {"category": "gender, nationality, email domain", "stored": "as is"},
        {"category": "credentials (password, salt, hashes)", "stored": "never: removed by the producer before Kafka"},
    ]


def build(pipeline: UserPipeline) -> dict[str, Any]:
    """The register as plain data (the YAML form)."""
    spec = pipeline.spec
    privacy = spec.privacy
    meta = pipeline.metadata
    return {
        "record": "Record of processing activities (GDPR Art. 30(1))",
        "processing": f"userpipeline {meta.namespace}/{meta.name}",
        "controller": {"name": TO_FILL, "contact": TO_FILL, "dataProtectionOfficer": TO_FILL},
        "purposes": [
            {"id": "statistics", "purpose": "aggregate statistics of users by nationality, gender, age band and "
                                            f"email domain, shown on a dashboard (groups under {privacy.k_anonymity} "
                                            "users folded into 'other')", "legalBasis": TO_FILL},
            {"id": "data-subject-requests", "purpose": "answering access and erasure requests: pseudonyms let a "
                                                       "person's row be found without storing who they are",
             "legalBasis": TO_FILL},
            {"id": "data-quality", "purpose": "finding why records break the data contract (dead letters)",
             "legalBasis": TO_FILL},
        ],
        "dataSubjects": [
            f"users delivered by the source ({spec.source.type.value}: {_source(pipeline)}) aged "
            f"{privacy.minimum_age} or more (stored)",
            f"users under {privacy.minimum_age}: processed in memory to compute their age, counted, never stored",
        ],
        "personalData": personal_data(pipeline),
        "specialCategories": "none",
        "recipients": [
            "viewers of the dashboard: aggregates only, never a profile",
            "the operators of the platform (Kafka, Cassandra, MongoDB, Kubernetes administrators)",
        ],
        "transfers": "none outside the cluster (the source is only read from)",
        "stores": stores(pipeline),
        "securityMeasures": [
            f"keyed HMAC-SHA256 pseudonyms of {', '.join(sorted(f.value for f in privacy.pseudonymize)) or 'nothing'}; "
            f"the key is in the Secret {privacy.key_secret!r} (locally: .userpipeline/secrets/hmac.key, mode 0600) "
            "and never in a query plan or a log",
            "each row records its key id (hmac_key_id); a key rotation keeps the earlier keys to match old rows and "
            "erasure-ledger entries, never to write (docs/privacy.md)",
            "dead letters carry the payload's structure and keyed hashes, never its values",
            "credentials removed by the producer before anything is published",
            f"minimum age {privacy.minimum_age}: younger users are not stored",
            f"k-anonymity {privacy.k_anonymity} on the dashboard",
            "pods run under the restricted Pod Security Standard; credentials and keys only in Secrets",
            "no personal data in logs; every purge writes an audit record without personal data",
        ],
    }


def _source(pipeline: UserPipeline) -> str:
    source = pipeline.spec.source
    return source.url if source.type.value == "randomuser" else "generated, not real people"


def to_yaml(register: dict[str, Any]) -> str:
    return yaml.safe_dump(register, sort_keys=False, allow_unicode=True, width=120)


def to_markdown(register: dict[str, Any]) -> str:
    lines = [f"# {register['record']}", "", f"Processing: **{register['processing']}**", ""]
    controller = register["controller"]
    lines += ["## Controller", "", *(f"- {key}: {value}" for key, value in controller.items()), ""]
    lines += ["## Purposes", "", "| purpose | legal basis |", "|---|---|",
              *(f"| {p['purpose']} | {p['legalBasis']} |" for p in register["purposes"]), ""]
    lines += ["## Data subjects", "", *(f"- {s}" for s in register["dataSubjects"]), ""]
    lines += ["## Personal data", "", "| category | stored |", "|---|---|",
              *(f"| {d['category']} | {d['stored']} |" for d in register["personalData"]), "",
              f"Special categories: {register['specialCategories']}.", ""]
    lines += ["## Recipients", "", *(f"- {r}" for r in register["recipients"]), "",
              f"Transfers to third countries: {register['transfers']}.", ""]
    lines += ["## Stores and retention", "", "| store | holds | personal data | retention | set by |", "|---|---|---|---|---|"]
    for store in register["stores"]:
        retention = store["retention"]
        lines.append(f"| {store['store']} | {store['holds']} | {store['personalData']} | {retention['period']} "
                     f"| {retention['setting']}{'; ' + retention['enforcedBy'] if 'enforcedBy' in retention else ''} |")
    profiles = next(s for s in register["stores"] if s["id"] == "cassandra-profiles")
    lines += ["", "### Cassandra columns", "", "| column | purpose |", "|---|---|",
              *(f"| `{c['column']}` | {c['purpose']} |" for c in profiles["columns"]), ""]
    lines += ["## Security measures", "", *(f"- {m}" for m in register["securityMeasures"]), ""]
    return "\n".join(lines)
