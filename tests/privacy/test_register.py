"""The Art. 30 register says what the configuration and the code do: every store with the retention the
spec sets, the Cassandra columns the sink writes, the personal fields as privacy.pseudonymize decides."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from userpipeline.jobs.stream.pseudonymize import FIELDS
from userpipeline.jobs.stream.sinks.cassandra import COLUMNS
from userpipeline.operator import register
from userpipeline.operator.spec import UserPipeline
from userpipeline.operator.spec.durations import parse_duration

STORES = {"raw-topic", "dead-letter-topic", "cassandra-profiles", "mongodb-aggregates", "mongodb-operational",
          "mongodb-erasure-ledger", "mongodb-audit", "checkpoints", "logs"}
PRIVACY_DOC = Path(__file__).resolve().parents[2] / "docs" / "privacy.md"


def pipeline(spec: dict | None = None) -> UserPipeline:
    return UserPipeline.model_validate({"metadata": {"name": "p", "namespace": "ns"}, "spec": spec or {}})


def retention_of(document: dict) -> dict[str, str]:
    return {store["id"]: store["retention"]["period"] for store in document["stores"]}


def test_every_store_is_listed_with_a_retention():
    document = register.build(pipeline())
    assert {store["id"] for store in document["stores"]} == STORES
    assert all(store["retention"]["period"] and store["retention"]["setting"] for store in document["stores"])


@pytest.mark.parametrize(("path", "value", "store"), [
    (("topic", "retention"), "3d", "raw-topic"),
    (("retention", "deadLetter"), "36h", "dead-letter-topic"),
    (("retention", "profiles"), "15m", "cassandra-profiles"),
    (("retention", "aggregates"), "13w", "mongodb-aggregates"),
])
def test_a_retention_change_in_the_spec_changes_the_register(path, value, store):
    before = retention_of(register.build(pipeline()))
    spec: dict = {path[0]: {path[1]: value}}
    after = register.build(pipeline(spec))
    assert retention_of(after)[store] == value and before[store] != value
    [changed] = [s for s in after["stores"] if s["id"] == store]
    assert changed["retention"]["seconds"] == parse_duration(value)
    assert {k: v for k, v in retention_of(after).items() if k != store} == {k: v for k, v in before.items() if k != store}
    assert f"| {value} |" in register.to_markdown(after)


def test_the_purge_schedule_is_the_specs():
    document = register.build(pipeline({"retention": {"purgeSchedule": "30 4 * * 1"}}))
    [aggregates] = [s for s in document["stores"] if s["id"] == "mongodb-aggregates"]
    assert "'30 4 * * 1'" in aggregates["retention"]["enforcedBy"]


def test_columns_are_the_sinks_and_each_has_a_purpose():
    assert set(register.COLUMN_PURPOSES) == set(COLUMNS)
    assert set(register.PERSONAL_COLUMNS) == set(FIELDS)
    assert all(purpose for purpose in register.COLUMN_PURPOSES.values())


def test_the_documented_column_purposes_are_the_registers():
    text = PRIVACY_DOC.read_text()
    table = text.split("<!-- columns:start -->")[1].split("<!-- columns:end -->")[0]
    rows = [line.split("|")[1:3] for line in table.splitlines() if line.startswith("| `")]
    assert {name.strip().strip("`"): purpose.strip() for name, purpose in rows} == register.COLUMN_PURPOSES


def test_personal_fields_follow_privacy_pseudonymize():
    document = register.build(pipeline({"privacy": {"pseudonymize": ["email", "phone"], "minimumAge": 21}}))
    stored = {d["category"]: d["stored"] for d in document["personalData"]}
    assert stored["email address"].startswith("keyed HMAC") and stored["full name"] == "not stored"
    assert stored["date of birth"] == "not stored"
    [profiles] = [s for s in document["stores"] if s["id"] == "cassandra-profiles"]
    kept = {c["column"] for c in profiles["columns"]}
    assert {"email_hmac", "phone_hmac"} <= kept and not kept & {"name_hmac", "dob_hmac", "cell_hmac", "address_hmac"}
    assert any("21" in subject for subject in document["dataSubjects"])


def test_the_command_writes_yaml_and_markdown(tmp_path):
    spec = tmp_path / "p.yaml"
    spec.write_text(yaml.safe_dump({"apiVersion": "userpipeline.io/v1alpha1", "kind": "UserPipeline",
                                    "metadata": {"name": "p", "namespace": "ns"},
                                    "spec": {"retention": {"profiles": "10d", "deadLetter": "1d"}}}))
    out = tmp_path / "register"
    result = subprocess.run([sys.executable, "-m", "userpipeline.operator.cli", "register", "-f", str(spec), "-o", str(out)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    written = yaml.safe_load((out / "register.yaml").read_text())
    assert written == register.build(pipeline({"retention": {"profiles": "10d", "deadLetter": "1d"}}))
    markdown = (out / "register.md").read_text()
    assert all(store["store"] in markdown for store in written["stores"]) and "| 10d |" in markdown


def test_the_command_says_what_to_do_without_a_spec(tmp_path):
    result = subprocess.run([sys.executable, "-m", "userpipeline.operator.cli", "register", "--state-dir", str(tmp_path)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and "Traceback" not in result.stderr and "-f FILE" in result.stderr
