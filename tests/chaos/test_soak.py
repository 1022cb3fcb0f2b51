"""The short chaos soak, inside `make test`: every kind of service SIGKILLed at least once, bad records of
every kind injected, nothing lost (`make chaos` runs the full one: tests/chaos/soak.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SOAK = Path(__file__).resolve().parent / "soak.py"
VICTIMS = {"kafka", "cassandra", "ferretdb", "producer", "stream", "dashboard", "reconciler"}

pytestmark = pytest.mark.timeout(1800)


def test_short_soak_kills_every_service_and_loses_nothing(tmp_path):
    summary_file = tmp_path / "soak.json"
    result = subprocess.run(
        [sys.executable, str(SOAK), "--minutes", "2", "--seed", "1010", "--rate", "30", "--kill-interval", "10", "20",
         "--kills-per-service", "1", "--inject-every", "10", "--json", str(summary_file)],
        capture_output=True, text=True, timeout=1700)
    output = result.stdout[-6000:] + result.stderr[-3000:]
    assert summary_file.exists(), output
    summary = json.loads(summary_file.read_text())
    assert {name for name, kills in summary["kills"].items() if kills >= 1} == VICTIMS, output
    assert all(summary["restarts"].get(name, 0) >= 1 for name in VICTIMS), output
    assert summary["lost"] == 0 and summary["failures"] == {}, output
    assert result.returncode == 0 and "lost: 0" in result.stdout, output
    assert summary["stored"] > 0 and summary["rejected"] > 0 and all(summary["injected"].values()), output
