"""A UserPipeline file that cannot be used is explained in words a person acts on: a missing file says so,
bad YAML says where, and each invalid field gets one line with its path and the API server's wording."""

from __future__ import annotations

import subprocess
import sys

import pytest

BAD_FIELDS = """apiVersion: userpipeline.io/v1alpha1
kind: UserPipeline
metadata: {name: local}
spec:
  producer: {ratePerSecond: -1, ratePerSec: 5}
  topic: {partitions: 0}
"""


def cli(*args: str) -> subprocess.CompletedProcess:
    # Its own process: the CLI configures logging onto the stderr it is given, which must outlive the test.
    return subprocess.run([sys.executable, "-m", "userpipeline.operator.cli", *args], capture_output=True, text=True,
                          timeout=120)


def run(*args: str) -> str:
    result = cli(*args)
    assert result.returncode == 1, result.stdout + result.stderr
    return " ".join((result.stdout + result.stderr).split())


@pytest.mark.parametrize("command", ["register", "purge"])
def test_a_missing_file_is_named_as_missing(command, tmp_path):
    output = run(command, "-f", str(tmp_path / "missing.yaml"))
    assert "missing.yaml does not exist" in output and "Errno" not in output


def test_each_invalid_field_is_one_line_with_its_path(tmp_path):
    spec = tmp_path / "bad.yaml"
    spec.write_text(BAD_FIELDS)
    result = cli("register", "-f", str(spec))
    assert result.returncode == 1
    output = result.stdout + result.stderr
    lines = [line.strip() for line in output.splitlines()]
    assert "spec.producer.ratePerSecond: should be greater than or equal to 0" in lines
    assert "spec.producer.ratePerSec: field not declared in the schema (check its spelling)" in lines
    assert "spec.topic.partitions: should be greater than or equal to 1" in lines
    assert "errors.pydantic.dev" not in output and "3 problems" in output


def test_broken_yaml_says_where(tmp_path):
    spec = tmp_path / "broken.yaml"
    spec.write_text("spec:\n  producer: [\n")
    assert "broken.yaml is not valid YAML at line 3" in run("register", "-f", str(spec))
