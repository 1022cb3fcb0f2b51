"""Pod building blocks shared by the producer, the streaming job and the purge: the restricted Pod
Security Standard, and the environment that `jobs.endpoints.Endpoints.from_env()` reads."""

from __future__ import annotations

from userpipeline.operator.kube.client import Obj
from userpipeline.operator.kube.parts import Context

RUN_AS = 10001


def pod_security() -> Obj:
    return {"runAsNonRoot": True, "runAsUser": RUN_AS, "runAsGroup": RUN_AS, "fsGroup": RUN_AS,
            "seccompProfile": {"type": "RuntimeDefault"}}


def container_security() -> Obj:
    return {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}}


def resources(cpu: str, memory: str) -> Obj:
    return {"requests": {"cpu": cpu, "memory": memory}, "limits": {"memory": memory}}


def _secret_env(name: str, secret: str, key: str, optional: bool = False) -> Obj:
    ref: Obj = {"name": secret, "key": key}
    if optional:
        ref["optional"] = True
    return {"name": name, "valueFrom": {"secretKeyRef": ref}}


def kafka_env(ctx: Context) -> list[Obj]:
    return [{"name": "USERPIPELINE_KAFKA_BOOTSTRAP", "value": ctx.settings.kafka_bootstrap}]


def store_env(ctx: Context) -> list[Obj]:
    """Cassandra and MongoDB endpoints and credentials, straight from their Secrets."""
    cassandra, mongo = ctx.settings.cassandra_secret, ctx.settings.mongo_secret
    return [
        _secret_env("USERPIPELINE_CASSANDRA_HOSTS", cassandra, "hosts"),
        _secret_env("USERPIPELINE_CASSANDRA_USERNAME", cassandra, "username", optional=True),
        _secret_env("USERPIPELINE_CASSANDRA_PASSWORD", cassandra, "password", optional=True),
        _secret_env("USERPIPELINE_MONGO_URI", mongo, "uri"),
    ]


def hmac_env(ctx: Context) -> list[Obj]:
    secret = ctx.spec.privacy.key_secret
    return [_secret_env("USERPIPELINE_HMAC_KEY", secret, "key"),
            _secret_env("USERPIPELINE_HMAC_KEY_ID", secret, "keyId")]
