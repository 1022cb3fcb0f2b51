"""The UserPipeline custom resource (userpipeline.io/v1alpha1) as pydantic models.

Field names are camelCase in YAML (aliases) and snake_case in Python. Every field has a default,
so `spec: {}` is a valid pipeline. Cross-field rules that the API server must enforce too are
listed in `CEL_RULES` next to the model they belong to; the CRD generator (`userpipeline.operator.crd`)
copies them into `x-kubernetes-validations`, and the same checks run here as pydantic validators.
Rules that compare with the previous object (`oldSelf`) exist only in the API server.
"""

from __future__ import annotations

import re
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, ClassVar, NamedTuple

import yaml
from croniter import croniter
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

from userpipeline.operator.spec.durations import DURATION_PATTERN, parse_duration

GROUP = "userpipeline.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "UserPipeline"
PLURAL = "userpipelines"
SHORT_NAME = "upl"

CASSANDRA_MAX_TTL_SECONDS = 630_720_000  # 20 years: Cassandra refuses a larger default_time_to_live
RANDOMUSER_MAX_BATCH = 5000  # randomuser.me serves at most 5000 users per request
MAX_TRIGGER_SECONDS = 3600


class CelRule(NamedTuple):
    """A rule the API server enforces (`x-kubernetes-validations`); `field_path` points the error at a field."""

    rule: str
    message: str
    field_path: str = ""


def cel_seconds(expr: str) -> str:
    """CEL for the seconds of a duration string like `30d` (Kubernetes' CEL `duration()` knows no d or w)."""
    units = "{'s': 1, 'm': 60, 'h': 3600, 'd': 86400, 'w': 604800}"
    return f"(int({expr}.substring(0, size({expr}) - 1)) * {units}[{expr}.substring(size({expr}) - 1)])"


def _cel(rule: str, message: str) -> dict[str, Any]:
    return {"x-kubernetes-validations": [{"rule": rule, "message": message}]}


DURATION_MESSAGE = "must be a whole number and a unit s, m, h, d or w, e.g. '30d' or '12h'"
Duration = Annotated[
    str,
    Field(pattern=DURATION_PATTERN, max_length=7,
          json_schema_extra=_cel(f"self.matches('{DURATION_PATTERN}')", DURATION_MESSAGE)),
    AfterValidator(lambda v: parse_duration(v) and v),
]


def _cron_field(value: str, names: tuple[str, ...] = (), question: bool = False) -> str:
    atom = "|".join([value, *names, *(n.lower() for n in names)])
    term = rf"(\*|({atom})(-({atom}))?)(/[0-9]{{1,2}})?"
    if question:
        term = rf"(\?|{term})"
    return rf"{term}(,{term})*"


_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_DAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
# What Kubernetes CronJobs accept: five fields (robfig/cron's standard parser) or an @descriptor.
CRON_PATTERN = (
    r"^(@(yearly|annually|monthly|weekly|daily|midnight|hourly)|"
    + r"\s+".join([
        _cron_field(r"[0-5]?[0-9]"),
        _cron_field(r"[01]?[0-9]|2[0-3]"),
        _cron_field(r"0?[1-9]|[12][0-9]|3[01]", question=True),
        _cron_field(r"0?[1-9]|1[0-2]", _MONTHS),
        _cron_field(r"[0-7]", _DAYS, question=True),
    ])
    + r")$"
)
CRON_MESSAGE = "must be a five-field cron schedule (minute hour day-of-month month day-of-week), e.g. '0 3 * * *'"


def _check_cron(expr: str) -> str:
    if not re.match(CRON_PATTERN, expr) or not croniter.is_valid(expr):
        raise ValueError(f"{expr!r} {CRON_MESSAGE}")
    return expr


# A CEL rule rather than a `pattern`: the regex is too long to be a readable error message itself.
Cron = Annotated[
    str,
    Field(max_length=100, json_schema_extra=_cel(f"self.matches(r'{CRON_PATTERN}')", CRON_MESSAGE)),
    AfterValidator(_check_cron),
]
NAME_PATTERN = r"^[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?$"
Name = Annotated[str, Field(pattern=NAME_PATTERN, max_length=63)]


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)
    CEL_RULES: ClassVar[list[CelRule]] = []


class SourceType(str, Enum):
    randomuser = "randomuser"
    synthetic = "synthetic"


class PseudonymizedField(str, Enum):
    """A personal field the stream stores only as a keyed HMAC; a field not listed is not stored at all."""

    email = "email"
    phone = "phone"
    cell = "cell"
    address = "address"
    name = "name"  # the full name ("first last")
    dob = "dob"  # the date of birth (the age is computed from it before storing, whatever this says)


class Source(_Model):
    """Where users come from."""

    CEL_RULES: ClassVar[list[CelRule]] = [
        CelRule(f"self.type != 'randomuser' || self.batchSize <= {RANDOMUSER_MAX_BATCH}",
                f"source.batchSize must be at most {RANDOMUSER_MAX_BATCH} with type randomuser "
                "(the API serves at most that many users per request)", ".batchSize"),
    ]

    type: SourceType = Field(SourceType.synthetic, description="Where users come from: the randomuser.me API or the offline generator.")
    url: str = Field("https://randomuser.me/api/", pattern=r"^https?://\S+$", max_length=2048, description="randomuser API endpoint.")
    batch_size: int = Field(500, ge=1, le=50_000, description=f"Users per batch (`results=N`; at most {RANDOMUSER_MAX_BATCH} for randomuser).")
    seed: int = Field(42, ge=0, le=2**31 - 1, description="Seed of the synthetic generator.")
    minor_ratio: float = Field(0.05, ge=0, le=1, description="Share of synthetic users younger than 18.")
    broken_ratio: float = Field(0.0, ge=0, le=1, description="Share of deliberately malformed synthetic records (for testing).")

    @model_validator(mode="after")
    def _randomuser_batch_limit(self) -> Source:
        if self.type is SourceType.randomuser and self.batch_size > RANDOMUSER_MAX_BATCH:
            raise ValueError(self.CEL_RULES[0].message)
        return self


class Producer(_Model):
    """The producer's pace; changes reach the running producer without a restart."""

    rate_per_second: float = Field(50, ge=0, le=100000, description="Records published per second.")
    paused: bool = Field(False, description="Stop publishing without stopping the producer.")


class Topic(_Model):
    """The raw Kafka topic (a Strimzi KafkaTopic on Kubernetes)."""

    CEL_RULES: ClassVar[list[CelRule]] = [
        CelRule("self.name == oldSelf.name",
                "topic.name cannot change: create a new UserPipeline for a new topic", ".name"),
        CelRule("self.partitions >= oldSelf.partitions",
                "topic.partitions can only grow: Kafka cannot remove partitions", ".partitions"),
    ]

    name: Name = Field("users.raw", description="Kafka topic of raw users; the dead-letter topic is `<name>.dlq`.")
    partitions: int = Field(3, ge=1, le=1000, description="Partitions of the raw topic (can only grow).")
    replicas: int = Field(1, ge=1, le=10, description="Replication factor of both topics.")
    retention: Duration = Field("7d", description="Kafka retention of the raw topic.")


class Retention(_Model):
    """How long data is kept, and when the purge runs."""

    CEL_RULES: ClassVar[list[CelRule]] = [
        CelRule(f"!self.aggregates.matches('{DURATION_PATTERN}') || !self.profiles.matches('{DURATION_PATTERN}')"
                f" || {cel_seconds('self.aggregates')} >= {cel_seconds('self.profiles')}",
                "retention.aggregates must not be shorter than retention.profiles", ".aggregates"),
        CelRule(f"!self.profiles.matches('{DURATION_PATTERN}')"
                f" || {cel_seconds('self.profiles')} <= {CASSANDRA_MAX_TTL_SECONDS}",
                "retention.profiles must be at most 20 years (1040w): Cassandra's TTL limit", ".profiles"),
    ]

    profiles: Duration = Field("30d", description="How long profiles stay in Cassandra (table TTL).")
    aggregates: Duration = Field("90d", description="How long aggregate documents stay in MongoDB.")
    dead_letter: Duration = Field("7d", description="Kafka retention of the dead-letter topic.")
    purge_schedule: Cron = Field("0 3 * * *", description="Cron schedule (UTC) of the retention purge.")

    @model_validator(mode="after")
    def _check(self) -> Retention:
        if parse_duration(self.aggregates) < parse_duration(self.profiles):
            raise ValueError(self.CEL_RULES[0].message)
        if parse_duration(self.profiles) > CASSANDRA_MAX_TTL_SECONDS:
            raise ValueError(self.CEL_RULES[1].message)
        return self


class Privacy(_Model):
    """What is kept out of storage."""

    minimum_age: int = Field(18, ge=0, le=150, description="Users younger than this are not stored.")
    pseudonymize: list[PseudonymizedField] = Field(
        default_factory=lambda: list(PseudonymizedField),
        max_length=len(PseudonymizedField),
        description="Personal fields stored only as a keyed HMAC (each at most once); a field not listed is not "
                    "stored at all. The age is computed from the date of birth before storing either way.",
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )
    k_anonymity: int = Field(5, ge=1, le=1000, description="Groups smaller than this are folded into 'other' on the dashboard.")
    key_secret: Name = Field("userpipeline-hmac", description="Secret holding the HMAC key (keys `key` and `keyId`).")

    @model_validator(mode="after")
    def _unique_fields(self) -> Privacy:
        if len(set(self.pseudonymize)) != len(self.pseudonymize):
            raise ValueError("privacy.pseudonymize lists a field twice")
        return self


class Stream(_Model):
    """The Spark Structured Streaming job."""

    CEL_RULES: ClassVar[list[CelRule]] = [
        CelRule(f"!self.triggerInterval.matches('{DURATION_PATTERN}')"
                f" || {cel_seconds('self.triggerInterval')} <= {MAX_TRIGGER_SECONDS}",
                "stream.triggerInterval must be at most 1h", ".triggerInterval"),
    ]

    trigger_interval: Duration = Field("5s", description="Micro-batch trigger interval (at most 1h).")
    executors: int = Field(1, ge=1, le=100, description="Spark executors.")
    max_records_per_batch: int = Field(20000, ge=100, le=10_000_000, description="Upper bound of records read per micro-batch.")

    @model_validator(mode="after")
    def _trigger_limit(self) -> Stream:
        if parse_duration(self.trigger_interval) > MAX_TRIGGER_SECONDS:
            raise ValueError(self.CEL_RULES[0].message)
        return self


class Dashboard(_Model):
    """The Dash dashboard."""

    CEL_RULES: ClassVar[list[CelRule]] = [
        CelRule("self.enabled || self.host == ''", "dashboard.host needs dashboard.enabled: true", ".host"),
    ]

    enabled: bool = Field(True, description="Deploy the dashboard.")
    host: str = Field("", pattern=r"^([a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?)?$", max_length=253,
                      description="Ingress host; empty means any.")
    refresh_seconds: int = Field(5, ge=1, le=3600, description="How often the page refreshes.")

    @model_validator(mode="after")
    def _host_needs_enabled(self) -> Dashboard:
        if self.host and not self.enabled:
            raise ValueError(self.CEL_RULES[0].message)
        return self


class UserPipelineSpec(_Model):
    """The desired state of one pipeline; every field has a default."""

    source: Source = Field(default_factory=Source)
    producer: Producer = Field(default_factory=Producer)
    topic: Topic = Field(default_factory=Topic)
    retention: Retention = Field(default_factory=Retention)
    privacy: Privacy = Field(default_factory=Privacy)
    stream: Stream = Field(default_factory=Stream)
    dashboard: Dashboard = Field(default_factory=Dashboard)


class Metadata(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: Name
    namespace: str = "default"


class UserPipeline(BaseModel):
    """A whole UserPipeline document as written in YAML."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore")
    api_version: str = Field(API_VERSION, alias="apiVersion", pattern=rf"^{GROUP}/{VERSION}$")
    kind: str = Field(KIND, pattern=rf"^{KIND}$")
    metadata: Metadata
    spec: UserPipelineSpec = Field(default_factory=UserPipelineSpec)


def load_userpipeline(path: Path) -> UserPipeline:
    """Read and validate a UserPipeline YAML file (raises pydantic.ValidationError or yaml.YAMLError)."""
    return UserPipeline.model_validate(yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {})
