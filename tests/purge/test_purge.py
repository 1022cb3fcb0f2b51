"""The retention purge deletes exactly the empty aggregates not updated within the retention window, and audits it."""

import datetime as dt
import json
import os
import subprocess
import sys
import uuid

import yaml
from structlog.testing import capture_logs

from userpipeline.jobs.purge.purge import purge
from userpipeline.operator.spec import UserPipelineSpec

NOW = dt.datetime(2026, 11, 29, 12, 0, tzinfo=dt.timezone.utc)


def _doc(key: str, days_ago: float, count: int = 0) -> dict:
    return {"_id": f"nationality:{key}", "dimension": "nationality", "key": key, "count": count, "ageSum": 30 * count,
            "updatedAt": NOW - dt.timedelta(days=days_ago)}


def test_purge_deletes_only_expired_aggregates(mongo):
    with mongo.client() as client:
        db = client[f"purge{uuid.uuid4().hex[:6]}"]
        db.aggregates.insert_many([_doc("FR", 1), _doc("DE", 89.9), _doc("US", 90.1), _doc("BR", 400),
                                   _doc("IT", 400, count=2)])  # still counts people: stays, however old
        spec = UserPipelineSpec.model_validate({"retention": {"profiles": "30d", "aggregates": "90d"}})
        result = purge(db, spec, now=NOW)
        assert result.aggregates_deleted == 2
        assert sorted(d["key"] for d in db.aggregates.find()) == ["DE", "FR", "IT"]
        assert purge(db, spec, now=NOW).aggregates_deleted == 0


def test_every_purge_writes_an_audit_record_without_personal_data(mongo):
    with mongo.client() as client, capture_logs() as logs:
        db = client[f"purge{uuid.uuid4().hex[:6]}"]
        db.aggregates.insert_many([_doc("FR", 1), _doc("US", 100), _doc("BR", 400),
                                   {**_doc("x", 200), "_id": "emailDomain:mail.example", "dimension": "emailDomain",
                                    "key": "mail.example"}])
        spec = UserPipelineSpec.model_validate({"retention": {"profiles": "7d", "aggregates": "30d"}})
        first = purge(db, spec, now=NOW)
        second = purge(db, spec, now=NOW + dt.timedelta(hours=1))
        records = {d["_id"]: d for d in db.audit.find()}
        assert set(records) == {first.audit_id, second.audit_id}
        audited = records[first.audit_id]
        assert (audited["action"], audited["store"], audited["count"]) == ("purge", "mongodb:aggregates", 3)
        assert audited["rule"]["retention"] == "30d"
        assert audited["at"] == NOW.replace(tzinfo=None) and audited["rule"]["cutoff"] == (NOW - dt.timedelta(days=30)).replace(tzinfo=None)
        assert records[second.audit_id]["count"] == 0
        text = json.dumps(list(records.values()), default=str)
        assert all(key not in text for key in ("FR", "US", "BR", "mail.example"))
    lines = [line for line in logs if line["event"] == "audit.record"]
    assert [(line["action"], line["count"], line["audit_id"]) for line in lines] == [
        ("purge", 3, first.audit_id), ("purge", 0, second.audit_id)]


def test_purge_command_reads_the_spec_and_the_environment(mongo, tmp_path):
    database = f"purge{uuid.uuid4().hex[:6]}"
    with mongo.client() as client:
        client[database].aggregates.insert_one({**_doc("FR", 0), "updatedAt": dt.datetime(2000, 1, 1)})
    spec = tmp_path / "p.yaml"
    spec.write_text(yaml.safe_dump({"apiVersion": "userpipeline.io/v1alpha1", "kind": "UserPipeline",
                                    "metadata": {"name": "p"}, "spec": {"retention": {"aggregates": "90d"}}}))
    env = {**os.environ, "USERPIPELINE_MONGO_URI": mongo.uri, "USERPIPELINE_MONGO_DATABASE": database}
    result = subprocess.run([sys.executable, "-m", "userpipeline.operator.cli", "purge", "-f", str(spec)],
                            capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "purged 1 empty aggregate documents" in result.stdout and "audit record" in result.stdout
    with mongo.client() as client:
        assert [d["count"] for d in client[database].audit.find()] == [1]


def test_purge_command_says_what_to_do_when_mongo_is_down(tmp_path):
    spec = tmp_path / "p.yaml"
    spec.write_text("apiVersion: userpipeline.io/v1alpha1\nkind: UserPipeline\nmetadata: {name: p}\n")
    env = {**os.environ, "USERPIPELINE_MONGO_URI": "mongodb://127.0.0.1:9/?serverSelectionTimeoutMS=500"}
    result = subprocess.run([sys.executable, "-m", "userpipeline.operator.cli", "purge", "-f", str(spec)],
                            capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "USERPIPELINE_MONGO_URI" in result.stderr
