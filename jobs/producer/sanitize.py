"""Turn a source record into the Kafka message of the data contract: credentials removed, key = login.uuid.

Anything a source yields is published, even when it is not a valid user (the stream dead-letters it
with a reason): nothing is lost. A record without a usable `login.uuid` gets a null key.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

CREDENTIALS = ("password", "salt", "md5", "sha1", "sha256")
# For bytes that do not parse: blank any credential value that is still recognisable.
_CREDENTIAL_TEXT = re.compile(rb'"(password|salt|md5|sha1|sha256)"\s*:\s*"(?:[^"\\]|\\.)*"')
_CREDENTIAL_KEY = re.compile(rb'"(?:password|salt|md5|sha1|sha256)":')


@dataclass(frozen=True)
class Message:
    key: bytes | None
    value: bytes


def without_credentials(value: Any) -> Any:
    """A copy of `value` with the credential fields removed from every `login` object inside it."""
    if isinstance(value, dict):
        return {k: _strip_login(v) if k == "login" else _descend(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_descend(v) for v in value]
    return value


def _descend(value: Any) -> Any:
    return without_credentials(value) if isinstance(value, (dict, list)) else value


def _strip_login(login: Any) -> Any:
    if isinstance(login, dict):
        return {k: _descend(v) for k, v in login.items() if k not in CREDENTIALS}
    return _descend(login)


def key_of(user: Any) -> bytes | None:
    login = user.get("login") if isinstance(user, dict) else None
    uid = login.get("uuid") if isinstance(login, dict) else None
    return uid.encode() if isinstance(uid, str) and uid.strip() else None


def _dumps(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def to_message(payload: dict[str, Any] | bytes) -> Message:
    """The message to publish for one source record (a parsed user or raw bytes)."""
    if isinstance(payload, (bytes, bytearray)):
        try:
            parsed = json.loads(payload)
        except ValueError:
            return Message(None, _CREDENTIAL_TEXT.sub(rb'"\1":""', bytes(payload)))
        if not isinstance(parsed, dict):
            stripped = without_credentials(parsed)
            return Message(None, bytes(payload) if stripped == parsed else _dumps(stripped))
        payload = parsed
    value = _dumps(_without_login_credentials(payload))
    if _CREDENTIAL_KEY.search(value):  # a credential key elsewhere than in the top-level login: full walk
        value = _dumps(without_credentials(payload))
    return Message(key_of(payload), value)


def _without_login_credentials(user: dict[str, Any]) -> dict[str, Any]:
    """The API's case, fast: only the top-level `login` holds credentials."""
    login = user.get("login")
    if isinstance(login, dict) and not login.keys().isdisjoint(CREDENTIALS):
        return {**user, "login": {k: v for k, v in login.items() if k not in CREDENTIALS}}
    return user
