"""Pod building blocks shared by the producer, the streaming job and the purge: the restricted Pod
Security Standard, and the environment that `jobs.endpoints.Endpoints.from_env()` reads."""

from __future__ import annotations

from userpipeline.operator.kube.client import Obj
from userpipeline.operator.kube.parts import Context
from userpipeline.operator.kube.wiring import CASSANDRA, MONGO, OWNERSHIP_ENV

RUN_AS = 10001


def pod_security() -> Obj:
    return {"runAsNonRoot": True, "runAsUser": RUN_AS, "runAsGroup": RUN_AS, "fsGroup": RUN_AS,
            "seccompProfile": {"type": "RuntimeDefault"}}


def container_security() -> Obj:
    return {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}}


def resources(cpu: str, memory: str) -> Obj:
    return {"requests": {"cpu": cpu, "memory": memory}, "limits": {"memory": memory}}


def _secret_env(name: str, secret: str, key: str) -> Obj:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}


def kafka_env(ctx: Context) -> list[Obj]:
    return [{"name": "USERPIPELINE_KAFKA_BOOTSTRAP", "value": ctx.settings.kafka_bootstrap}, OWNERSHIP_ENV[0]]


def store_env(ctx: Context, fields: tuple[str, ...] = CASSANDRA + MONGO) -> list[Obj]:
    """Cassandra and MongoDB settings as the operator itself resolves them (operator/kube/wiring.py)."""
    env = ctx.settings.stores.env(fields)
    if set(fields) & set(CASSANDRA):
        env.append(OWNERSHIP_ENV[1])
    return env


def hmac_env(ctx: Context) -> list[Obj]:
    """The key ring: the active `key`/`keyId`, and the optional `retiredKeys` (JSON {id: key}) still matched."""
    secret = ctx.spec.privacy.key_secret
    retired = _secret_env("USERPIPELINE_HMAC_RETIRED_KEYS", secret, "retiredKeys")
    retired["valueFrom"]["secretKeyRef"]["optional"] = True
    return [_secret_env("USERPIPELINE_HMAC_KEY", secret, "key"),
            _secret_env("USERPIPELINE_HMAC_KEY_ID", secret, "keyId"), retired]
