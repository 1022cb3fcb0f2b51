"""How the pipeline's pods and the operator find Cassandra and MongoDB: one typed model, one rule.

Each connection setting is a literal value or a key of a Secret in the pipeline's namespace (e.g. the
`<cluster>-superuser` Secret K8ssandra makes, or `connectionString.standard` of the Secret the MongoDB
operator makes). The same `StoreWiring` renders the pods' environment (`value` / `secretKeyRef`) and
resolves, for the operator, the very same environment, which `Endpoints.from_env()` then parses as the
pods do: hosts with or without a port, defaults for optional keys, all in one place.
"""

from __future__ import annotations

import base64

from pydantic import BaseModel, ConfigDict, model_validator

from userpipeline.jobs.endpoints import Endpoints
from userpipeline.operator.kube.client import ApiException, Kube, Obj

ENV_PREFIX = "USERPIPELINE_"
CASSANDRA = ("cassandra_hosts", "cassandra_keyspace", "cassandra_username", "cassandra_password")
MONGO = ("mongo_uri", "mongo_database")
# On Kubernetes the KafkaTopics and the operator's CassandraTTL part own topics and table options.
OWNERSHIP_ENV = [{"name": "USERPIPELINE_MANAGE_TOPICS", "value": "false"},
                 {"name": "USERPIPELINE_MANAGE_TABLE_OPTIONS", "value": "false"}]


class SecretProblem(Exception):
    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason
        self.message = message


class Setting(BaseModel):
    """A literal `value`, or `key` of Secret `secret`; `optional`: a missing key leaves the jobs' default."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    value: str | None = None
    secret: str | None = None
    key: str | None = None
    optional: bool = False

    @model_validator(mode="after")
    def _one_source(self) -> Setting:
        if (self.value is None) == (self.secret is None) or (self.secret is not None and not self.key):
            raise ValueError("a setting is either {value} or {secret, key}")
        return self

    def env(self, name: str) -> Obj:
        if self.value is not None:
            return {"name": name, "value": self.value}
        ref: Obj = {"name": self.secret, "key": self.key}
        if self.optional:
            ref["optional"] = True
        return {"name": name, "valueFrom": {"secretKeyRef": ref}}


def _from(secret: str, key: str, optional: bool = False) -> Setting:
    return Setting(secret=secret, key=key, optional=optional)


class StoreWiring(BaseModel):
    """Field names are `Endpoints` field names: `cassandra_hosts` becomes USERPIPELINE_CASSANDRA_HOSTS."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    cassandra_hosts: Setting = _from("userpipeline-cassandra", "hosts")
    cassandra_keyspace: Setting = _from("userpipeline-cassandra", "keyspace", optional=True)
    cassandra_username: Setting = _from("userpipeline-cassandra", "username", optional=True)
    cassandra_password: Setting = _from("userpipeline-cassandra", "password", optional=True)
    mongo_uri: Setting = _from("userpipeline-mongo", "uri")
    mongo_database: Setting = _from("userpipeline-mongo", "database", optional=True)

    def env(self, fields: tuple[str, ...] = CASSANDRA + MONGO) -> list[Obj]:
        """The pods' environment for these settings."""
        return [getattr(self, name).env(ENV_PREFIX + name.upper()) for name in fields]

    def secrets(self) -> list[str]:
        return sorted({s.secret for s in (getattr(self, n) for n in CASSANDRA + MONGO) if s.secret})

    def resolve_env(self, kube: Kube, namespace: str, fields: tuple[str, ...] = CASSANDRA + MONGO) -> dict[str, str]:
        """What the pods' environment holds, read the way the kubelet reads it."""
        cache: dict[str, dict[str, str]] = {}
        env = {}
        for name in fields:
            setting: Setting = getattr(self, name)
            if setting.value is not None:
                env[ENV_PREFIX + name.upper()] = setting.value
                continue
            assert setting.secret and setting.key
            if setting.secret not in cache:
                cache[setting.secret] = read_secret(kube, namespace, setting.secret, self._keys(setting.secret))
            data = cache[setting.secret]
            if setting.key in data:
                env[ENV_PREFIX + name.upper()] = data[setting.key]
            elif not setting.optional:
                raise SecretProblem("SecretIncomplete", f"Secret {namespace}/{setting.secret} lacks key {setting.key} "
                                    f"({ENV_PREFIX + name.upper()})")
        return env

    def endpoints(self, kube: Kube, namespace: str, fields: tuple[str, ...] = CASSANDRA + MONGO) -> Endpoints:
        try:
            return Endpoints.from_env(self.resolve_env(kube, namespace, fields))
        except ValueError as exc:
            raise SecretProblem("SecretInvalid", " ".join(str(exc).split())[:300]) from None

    def _keys(self, secret: str) -> list[str]:
        return [s.key for s in (getattr(self, n) for n in CASSANDRA + MONGO)
                if s.secret == secret and not s.optional and s.key]


def read_secret(kube: Kube, namespace: str, name: str, required: list[str]) -> dict[str, str]:
    """The decoded data of the Secret; raises SecretProblem saying what to create when it is unusable."""
    try:
        secret = kube.get("v1", "Secret", name, namespace)
    except ApiException as exc:
        raise SecretProblem("SecretUnreadable",
                            f"cannot read Secret {namespace}/{name}: HTTP {exc.status} {exc.reason}") from None
    if secret is None:
        keys = ", ".join(required) or "its keys"
        raise SecretProblem("SecretMissing", f"Secret {namespace}/{name} not found: create it with key(s) {keys}")
    return {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}
