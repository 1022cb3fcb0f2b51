"""Finding a person's rows by email without scanning the table: a secondary index on `profiles.email_hmac`.

The profiles are keyed by user id; an erasure or access request by email knows only the email, which it
hashes under every key of the ring (pseudonymize.py). Cassandra keeps the index itself: rows written,
overwritten, deleted or expired by the TTL leave or join it with the row, so nothing of ours can
drift from the table. It is a regular (not SAI) index because the Kubernetes deployment runs Cassandra
4.1; an equality lookup on it asks every node (fine for erasure's handful of lookups), never reads the
whole table. The stream creates it with the table (sinks/cassandra.py); `userpipeline erase` creates
it on an older table too and, while it is still being built, finds the emails with a scan instead.
"""

from __future__ import annotations

INDEX = "profiles_email_hmac"


def ensure_email_index(session, keyspace: str) -> None:
    """Create the index if missing (idempotent; `keyspace` is a checked CQL identifier)."""
    session.execute(f"CREATE INDEX IF NOT EXISTS {INDEX} ON {keyspace}.profiles (email_hmac)")
