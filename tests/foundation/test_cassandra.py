"""Cassandra: a CQL round trip on a real node."""

import uuid


def test_cql_round_trip(cassandra):
    session = cassandra.session()
    try:
        session.execute(
            "CREATE KEYSPACE IF NOT EXISTS smoke WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}"
        )
        session.execute("CREATE TABLE IF NOT EXISTS smoke.kv (k uuid PRIMARY KEY, v text, n int)")
        key = uuid.uuid4()
        session.execute("INSERT INTO smoke.kv (k, v, n) VALUES (%s, %s, %s)", (key, "Ελένη 李 🙂", 42))
        row = session.execute("SELECT v, n FROM smoke.kv WHERE k = %s", (key,)).one()
        assert (row.v, row.n) == ("Ελένη 李 🙂", 42)
        assert session.execute("SELECT release_version FROM system.local").one().release_version.startswith("5.0")
    finally:
        session.cluster.shutdown()
