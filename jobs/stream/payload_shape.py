"""What a dead letter keeps of a rejected payload: its structure, never its values.

Enough to see why a record broke the contract (field names, JSON types, lengths; for text that is not
JSON, its length and character classes), nothing that identifies a person: no value is copied, field
names that do not look like identifiers are replaced by a keyed hash, and email, phone and cell (the
ones spec.privacy.pseudonymize lists) are given as the same keyed HMACs the profiles store, so a
dead letter can still be linked to a person by whoever holds the key. Pure Python: the dead-letter
sink runs it in a Spark UDF over the rejected rows only.
"""

from __future__ import annotations

import json
import re
import unicodedata
from typing import Any

from userpipeline.jobs.stream.pseudonymize import Pseudonymizer

MAX_PARSED_BYTES = 4 * 1024 * 1024  # larger values (over the contract's 1 MiB) get the text summary only
MAX_DEPTH = 12
MAX_NODES = 400  # of the shape: a few KiB at most per dead letter
MAX_ITEMS = 5  # array items described; the length says how many there were
IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_.$-]{0,63}$")
LINKED_FIELDS = ("email", "phone", "cell")
BRACKETS = '{}[]"'


def summarize(value: bytes | None, pseudonymizer: Pseudonymizer) -> dict[str, Any]:
    """The `payload` object of a dead letter (docs/data-contract.md)."""
    if value is None:
        return {"format": "none"}
    text = value.decode("utf-8", errors="replace")
    parsed = _parse(text) if len(value) <= MAX_PARSED_BYTES else _NOT_JSON
    if parsed is _NOT_JSON:
        return {"format": "text", **text_summary(text, value)}
    summary: dict[str, Any] = {"format": "json", "shape": Shape(pseudonymizer).of(parsed)}
    if isinstance(parsed, dict):
        linked = {name: pseudonymizer.digest(name, parsed.get(name)) for name in LINKED_FIELDS
                  if isinstance(parsed.get(name), str)}
        summary["pseudonyms"] = {f"{name}_hmac": digest for name, digest in linked.items() if digest}
    return summary


_NOT_JSON = object()


def _parse(text: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return _NOT_JSON


def text_summary(text: str, value: bytes) -> dict[str, Any]:
    """Length, UTF-8 validity, character classes and bracket counts of text that is not JSON."""
    classes = {"letters": 0, "digits": 0, "whitespace": 0, "punctuation": 0, "other": 0}
    for char in text:
        classes[_class(char)] += 1
    first = text.lstrip()[:1]
    return {"characters": len(text), "utf8": _is_utf8(value), "classes": classes,
            "brackets": {char: text.count(char) for char in BRACKETS},
            "startsWith": first if first and first in BRACKETS else None}


def _class(char: str) -> str:
    if char.isspace():
        return "whitespace"
    if char.isdigit():
        return "digits"
    if char.isalpha():
        return "letters"
    return "punctuation" if unicodedata.category(char).startswith("P") else "other"


def _is_utf8(value: bytes) -> bool:
    try:
        value.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


class Shape:
    """A JSON value described without its values: objects keep their keys, scalars become `type:length`."""

    def __init__(self, pseudonymizer: Pseudonymizer):
        self.pseudonymizer = pseudonymizer
        self.nodes = 0

    def of(self, value: Any, depth: int = 0) -> Any:
        self.nodes += 1
        if self.nodes > MAX_NODES or depth > MAX_DEPTH:
            return "…"
        if isinstance(value, dict):
            return {self.key(name): self.of(item, depth + 1) for name, item in value.items()}
        if isinstance(value, list):
            items = [self.of(item, depth + 1) for item in value[:MAX_ITEMS]]
            return {"array": len(value), "items": items}
        return scalar(value)

    def key(self, name: str) -> str:
        """A field name as is when it looks like one; otherwise (it could hold anything) a keyed hash of it."""
        if IDENTIFIER.match(name):
            return name
        return "~" + self.pseudonymizer.fingerprint(name.encode("utf-8", errors="replace"))[:16]


def scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return f"number:{len(json.dumps(value))}"
    return f"string:{len(value)}"
