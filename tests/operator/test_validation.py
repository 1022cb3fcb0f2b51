"""Invalid UserPipelines are rejected by the API server at apply time, with a message a person understands;
the spec model (used by the local runner) rejects the same specs."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from kube.resources import new_namespace
from userpipeline.operator.kube.client import ApiException, Kube
from userpipeline.operator.spec import API_VERSION, KIND, UserPipelineSpec

from kube.pipelines import pipeline

# (id, spec, words the API server's message must contain)
INVALID_SPECS = [
    ("rate-not-a-number", {"producer": {"ratePerSecond": "fast"}},
     "spec.producer.ratePerSecond in body must be of type number"),
    ("rate-negative", {"producer": {"ratePerSecond": -1}}, "should be greater than or equal to 0"),
    ("rate-too-high", {"producer": {"ratePerSecond": 1_000_000}}, "should be less than or equal to 100000"),
    ("source-unknown", {"source": {"type": "twitter"}}, 'Unsupported value: "twitter"'),
    ("batch-over-api-limit", {"source": {"type": "randomuser", "batchSize": 6000}},
     "at most 5000 with type randomuser"),
    ("url-not-http", {"source": {"url": "ftp://example.org/"}}, "spec.source.url in body should match"),
    ("minor-ratio-over-1", {"source": {"minorRatio": 1.5}}, "spec.source.minorRatio"),
    ("zero-partitions", {"topic": {"partitions": 0}}, "spec.topic.partitions: Invalid value: 0"),
    ("topic-name-spaces", {"topic": {"name": "Users Raw"}}, "spec.topic.name in body should match"),
    ("duration-in-words", {"topic": {"retention": "7days"}}, "must be a whole number and a unit s, m, h, d or w"),
    ("aggregates-shorter", {"retention": {"profiles": "90d", "aggregates": "30d"}},
     "retention.aggregates must not be shorter than retention.profiles"),
    ("ttl-over-20-years", {"retention": {"profiles": "1100w", "aggregates": "1200w"}}, "at most 20 years"),
    ("cron-in-words", {"retention": {"purgeSchedule": "every day"}}, "must be a five-field cron schedule"),
    ("cron-minute-61", {"retention": {"purgeSchedule": "61 * * * *"}}, "must be a five-field cron schedule"),
    ("cron-with-seconds", {"retention": {"purgeSchedule": "0 0 3 * * *"}}, "must be a five-field cron schedule"),
    ("pseudonymize-unknown", {"privacy": {"pseudonymize": ["ssn"]}}, 'Unsupported value: "ssn"'),
    ("pseudonymize-twice", {"privacy": {"pseudonymize": ["email", "email"]}}, 'Duplicate value: "email"'),
    ("minimum-age-200", {"privacy": {"minimumAge": 200}}, "should be less than or equal to 150"),
    ("k-anonymity-0", {"privacy": {"kAnonymity": 0}}, "spec.privacy.kAnonymity"),
    ("trigger-2h", {"stream": {"triggerInterval": "2h"}}, "stream.triggerInterval must be at most 1h"),
    ("executors-0", {"stream": {"executors": 0}}, "spec.stream.executors"),
    ("host-without-dashboard", {"dashboard": {"enabled": False, "host": "users.example.org"}},
     "dashboard.host needs dashboard.enabled: true"),
    ("host-invalid", {"dashboard": {"host": "Not A Host"}}, "spec.dashboard.host in body should match"),
    ("unknown-field", {"producer": {"rte": 5}}, 'unknown field "spec.producer.rte"'),
]


@pytest.fixture(scope="module")
def validation_namespace(admin: Kube) -> str:
    return new_namespace(admin, "invalid")


def rejection(kube: Kube, obj: dict) -> str:
    """Create it as `kubectl apply` does for a new object (POST, strict field validation)."""
    with pytest.raises(ApiException) as caught:
        kube.create(obj)
    assert caught.value.status in (400, 422), caught.value.body
    return json.loads(caught.value.body)["message"]


def update_rejection(kube: Kube, obj: dict) -> str:
    """Change it as `kubectl apply` does for an existing custom resource (JSON merge patch)."""
    meta = obj["metadata"]
    with pytest.raises(ApiException) as caught:
        kube.patch_merge(obj["apiVersion"], obj["kind"], meta["name"], meta["namespace"], {"spec": obj["spec"]})
    assert caught.value.status == 422, caught.value.body
    return json.loads(caught.value.body)["message"]


@pytest.mark.parametrize(("spec", "expected"), [case[1:] for case in INVALID_SPECS], ids=[c[0] for c in INVALID_SPECS])
def test_invalid_spec_is_rejected_with_a_readable_message(admin: Kube, validation_namespace: str, spec: dict,
                                                          expected: str) -> None:
    message = rejection(admin, pipeline("bad", validation_namespace, spec))
    assert expected in message, message


@pytest.mark.parametrize(("spec", "expected"), [case[1:] for case in INVALID_SPECS], ids=[c[0] for c in INVALID_SPECS])
def test_the_spec_model_rejects_the_same(spec: dict, expected: str) -> None:
    with pytest.raises(ValidationError):
        UserPipelineSpec.model_validate(spec)


def test_a_too_long_name_is_rejected(admin: Kube, validation_namespace: str) -> None:
    message = rejection(admin, pipeline("p" * 41, validation_namespace))
    assert "metadata.name must be at most 40 characters" in message


@pytest.mark.parametrize(("change", "expected"), [
    ({"topic": {"partitions": 2}}, "topic.partitions can only grow: Kafka cannot remove partitions"),
    ({"topic": {"name": "users.other"}}, "topic.name cannot change"),
], ids=["partitions-shrink", "topic-rename"])
def test_changes_the_platform_cannot_follow_are_rejected(admin: Kube, validation_namespace: str, change: dict,
                                                         expected: str) -> None:
    name = f"grown-{len(expected)}"
    admin.create(pipeline(name, validation_namespace, {"topic": {"name": "users.raw", "partitions": 3}}))
    assert expected in update_rejection(admin, pipeline(name, validation_namespace, change))
    admin.patch_merge(API_VERSION, KIND, name, validation_namespace, {"spec": {"topic": {"partitions": 6}}})


def test_an_empty_spec_gets_every_default(admin: Kube, validation_namespace: str) -> None:
    stored = admin.create(pipeline("defaults", validation_namespace))
    assert stored["spec"] == json.loads(UserPipelineSpec().model_dump_json(by_alias=True))
