"""values.schema.json: Helm refuses bad values before rendering anything, with a message that names the value
and says what is wrong."""

from __future__ import annotations

import pytest

from kube.render import render

# (what is wrong, the values, what the message must say)
BAD = [
    ("unknown top-level key", {"imageTag": "2"}, ["additional properties 'imageTag' not allowed"]),
    ("unknown nested key", {"operator": {"replicas": 2}}, ["/operator", "additional properties 'replicas'"]),
    ("pull policy", {"image": {"pullPolicy": "Sometimes"}}, ["/image/pullPolicy", "IfNotPresent"]),
    ("image tag with a space", {"image": {"tag": "v 2"}}, ["/image/tag", "does not match pattern"]),
    ("empty repository", {"image": {"repository": ""}}, ["/image/repository", "minLength"]),
    ("zero backoff", {"operator": {"maxBackoffSeconds": 0}}, ["/operator/maxBackoffSeconds", "0"]),
    ("namespace name", {"operator": {"watchNamespaces": ["Team_A"]}}, ["/operator/watchNamespaces/0", "pattern"]),
    ("storage quantity", {"operator": {"checkpointStorage": "lots"}}, ["/operator/checkpointStorage", "pattern"]),
    ("kafka storage type", {"kafka": {"storage": {"type": "tmpfs"}}}, ["/kafka/storage/type", "ephemeral"]),
    ("bootstrap without port", {"kafka": {"external": {"bootstrap": "kafka.example"}}}, ["/kafka/external/bootstrap",
                                                                                 "pattern"]),
    ("keyspace name", {"cassandra": {"keyspace": "user-pipeline"}}, ["/cassandra/keyspace", "pattern"]),
    ("heap size", {"cassandra": {"heapSize": "512"}}, ["/cassandra/heapSize", "pattern"]),
    ("boolean as text", {"networkPolicies": {"enabled": "yes"}}, ["/networkPolicies/enabled", "boolean"]),
    ("secret name", {"hmac": {"existingSecret": "My_Secret"}}, ["/hmac/existingSecret", "pattern"]),
    ("ingress class name", {"dashboard": {"ingress": {"className": "Nginx!"}}}, ["/dashboard/ingress/className"]),
    ("parentRef without name", {"dashboard": {"httpRoute": {"enabled": True, "parentRefs": [{"namespace": "x"}]}}},
     ["/dashboard/httpRoute/parentRefs/0", "name"]),
    ("pipeline name too long", {"pipeline": {"name": "p" * 41}}, ["/pipeline/name", "maxLength"]),
    ("subchart switch", {"spark-operator": {"enabled": "no"}}, ["/spark-operator/enabled", "boolean"]),
]


@pytest.mark.parametrize("values, expected", [pytest.param(v, e, id=i) for i, v, e in BAD])
def test_bad_values_are_refused_with_a_readable_message(values: dict, expected: list[str]) -> None:
    proc = render(values, check=False)
    assert proc.returncode != 0, f"helm accepted {values}"
    message = proc.stderr
    assert "values don't meet the specifications of the schema" in message, message
    for text in expected:
        assert text in message, f"{text!r} not in:\n{message}"
    assert "panic" not in message.lower() and "%!" not in message, message
