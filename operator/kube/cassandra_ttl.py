"""Profile retention: Cassandra's `default_time_to_live` of the profiles table, set through the driver.

The table belongs to the streaming job (it creates it); until it exists this part reports TableMissing
and retries. A new TTL applies to rows written from then on; existing rows keep the TTL they got.
"""

from __future__ import annotations

import re
import threading

from cassandra import DriverException
from cassandra.auth import PlainTextAuthProvider
from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile, NoHostAvailable, Session
from cassandra.policies import RoundRobinPolicy

from userpipeline.jobs.endpoints import CASSANDRA_PORT, parse_hosts
from userpipeline.operator.kube.parts import Context, Outcome, failed
from userpipeline.operator.kube.wiring import CASSANDRA, SecretProblem
from userpipeline.operator.retention import PROFILES_TABLE as TABLE
from userpipeline.operator.retention import TableMissing, apply_profile_ttl
from userpipeline.operator.spec import parse_duration

CONDITION = "CassandraTTL"
_KEYSPACE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,47}$")


class Sessions:
    """One driver session per (hosts, user); dropped on failure so the next attempt reconnects at once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sessions: dict[tuple[str, str, str], tuple[Cluster, Session]] = {}

    def get(self, hosts: str, username: str, password: str, timeout: float) -> Session:
        key = (hosts, username, password)
        with self._lock:
            if key not in self._sessions:
                profile = ExecutionProfile(load_balancing_policy=RoundRobinPolicy(), request_timeout=timeout)
                auth = PlainTextAuthProvider(username, password) if username else None
                cluster = Cluster(parse_hosts(hosts, CASSANDRA_PORT), auth_provider=auth, connect_timeout=timeout,
                                  control_connection_timeout=timeout, protocol_version=5,
                                  execution_profiles={EXEC_PROFILE_DEFAULT: profile})
                self._sessions[key] = (cluster, cluster.connect())
            return self._sessions[key][1]

    def drop(self, hosts: str, username: str, password: str) -> None:
        with self._lock:
            entry = self._sessions.pop((hosts, username, password), None)
        if entry:
            entry[0].shutdown()

    def close(self) -> None:
        for key in list(self._sessions):
            self.drop(*key)


SESSIONS = Sessions()


def reconcile(ctx: Context) -> Outcome:
    try:
        endpoints = ctx.settings.stores.endpoints(ctx.kube, ctx.namespace, CASSANDRA)
    except SecretProblem as problem:
        return failed(CONDITION, problem.reason, problem.message)
    hosts, keyspace, user = endpoints.cassandra_hosts, endpoints.cassandra_keyspace, endpoints.cassandra_username
    password = endpoints.cassandra_password.get_secret_value() if endpoints.cassandra_password else ""
    if not _KEYSPACE.match(keyspace):
        return failed(CONDITION, "SecretInvalid", f"keyspace {keyspace!r} is not a valid name")
    desired = parse_duration(ctx.spec.retention.profiles)
    try:
        session = SESSIONS.get(hosts, user, password, ctx.settings.store_timeout_seconds)
        change = apply_profile_ttl(session, keyspace, desired)
    except TableMissing as missing:
        return failed(CONDITION, "TableMissing", f"{missing}; retrying")
    except (NoHostAvailable, DriverException, OSError, ValueError) as exc:
        SESSIONS.drop(hosts, user, password)
        return failed(CONDITION, "Unreachable", f"Cassandra at {hosts}: {type(exc).__name__}: {str(exc)[:300]}")
    return Outcome(CONDITION, True, "Applied", f"{keyspace}.{TABLE} default_time_to_live {desired}s",
                   {"profilesTtlSeconds": desired}, [change] if change else [])
