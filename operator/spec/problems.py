"""What is wrong with a UserPipeline file, in words a person acts on: one line per problem, with the field's
path as in the YAML (`spec.producer.ratePerSecond`) and the API server's wording for the same rule."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import ValidationError


def _where(loc: tuple) -> str:
    return ".".join(f"[{part}]" if isinstance(part, int) else str(part) for part in loc).replace(".[", "[") or "(top level)"


def _what(error: dict) -> str:
    message = error["msg"]
    if message.startswith("Input should"):  # pydantic's "Input should be ..." is the API server's "should be ..."
        message = message[len("Input "):]
    if message.startswith("Value error, "):
        message = message[len("Value error, "):]
    if error["type"] == "extra_forbidden":
        message = "field not declared in the schema (check its spelling)"
    return message


def validation_lines(exc: ValidationError) -> list[str]:
    return [f"{_where(error['loc'])}: {_what(error)}" for error in exc.errors(include_url=False)]


def describe(path: Path | str, exc: Exception) -> str:
    """The message for a spec that could not be loaded (an OSError, a YAML error or a validation error)."""
    if isinstance(exc, FileNotFoundError):
        return f"{path} does not exist: give the path of a UserPipeline YAML file (e.g. manifests/samples/local.yaml)"
    if isinstance(exc, OSError):
        return f"{path} cannot be read ({exc.strerror or exc}): check its permissions"
    if isinstance(exc, yaml.YAMLError):
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        return f"{path} is not valid YAML{at}: {getattr(exc, 'problem', None) or exc}"
    if isinstance(exc, ValidationError):
        lines = validation_lines(exc)
        return f"{path} is not a valid UserPipeline ({len(lines)} problem{'s' if len(lines) != 1 else ''}):\n  " + "\n  ".join(lines)
    return f"{path}: {exc}"
