"""Connection settings and credentials of Cassandra and MongoDB, read from Secrets in the pipeline's namespace."""

from __future__ import annotations

import base64

from userpipeline.operator.kube.client import ApiException, Kube


class SecretProblem(Exception):
    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason
        self.message = message


def read_secret(kube: Kube, namespace: str, name: str, required: tuple[str, ...]) -> dict[str, str]:
    """The decoded data of the Secret; raises SecretProblem saying what to create when it is unusable."""
    try:
        secret = kube.get("v1", "Secret", name, namespace)
    except ApiException as exc:
        message = f"cannot read Secret {namespace}/{name}: HTTP {exc.status} {exc.reason}"
        raise SecretProblem("SecretUnreadable", message) from None
    if secret is None:
        keys = ", ".join(required)
        raise SecretProblem("SecretMissing", f"Secret {namespace}/{name} not found: create it with key(s) {keys}")
    data = {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}
    missing = [key for key in required if not data.get(key)]
    if missing:
        raise SecretProblem("SecretIncomplete", f"Secret {namespace}/{name} lacks key(s) {', '.join(missing)}")
    return data
