"""Run checkov (Kubernetes framework) on manifests. checkov pins `packaging<24` while pytest 9 needs
`packaging>=24`, so it cannot live in the project's venv: it has a venv of its own in the cache
(`~/.cache/userpipeline/checkov-<version>/`, made by the bootstrap or by `python3.11 -m venv DIR &&
DIR/bin/pip install checkov==<version>`)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import yaml

CHECKOV_VERSION = "3.3.30"


def checkov_binary() -> str | None:
    cache = Path(os.environ.get("USERPIPELINE_CACHE", Path.home() / ".cache" / "userpipeline"))
    manifest = cache / "manifest.json"
    listed = json.loads(manifest.read_text()).get("checkov") if manifest.exists() else None
    for candidate in (listed, str(cache / f"checkov-{CHECKOV_VERSION}" / "bin" / "checkov"), shutil.which("checkov")):
        if candidate and Path(candidate).exists():
            return candidate
    return None


def load_skips(path: Path) -> dict[str, dict]:
    """The skip list: check id -> {reason, only?}. Every entry needs a reason; `only` limits it to resources
    whose checkov id (Kind.namespace.name) ends with one of the given suffixes."""
    skips = yaml.safe_load(path.read_text()) or {}
    empty = [check for check, entry in skips.items() if not str((entry or {}).get("reason") or "").strip()]
    assert not empty, f"{path}: give a reason for {empty}"
    return skips


def skipped(check: dict, skips: dict[str, dict]) -> bool:
    entry = skips.get(check["check_id"])
    if entry is None:
        return False
    only = entry.get("only")
    return not only or any(str(check.get("resource", "")).endswith(suffix) for suffix in only)


def write_manifests(docs: list[dict], directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for index, doc in enumerate(docs):
        name = f"{index:03d}-{doc['kind'].lower()}-{doc['metadata']['name']}.yaml"
        (directory / name).write_text(yaml.safe_dump(doc, sort_keys=False))
    return directory


def failed_checks(binary: str, directory: Path, skips: dict[str, dict]) -> tuple[list[dict], int]:
    """(failed checks not skipped, number of passed checks) of checkov's Kubernetes framework on a folder."""
    everywhere = sorted(check for check, entry in skips.items() if not entry.get("only"))
    cmd = [binary, "-d", str(directory), "--framework", "kubernetes", "-o", "json", "--quiet", "--compact",
           "--skip-download", "--skip-results-upload"]
    if everywhere:
        cmd += ["--skip-check", ",".join(everywhere)]
    env = {**os.environ, "BC_SKIP_MAPPING": "TRUE"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    if proc.returncode not in (0, 1):
        raise AssertionError(f"checkov failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    report = json.loads(proc.stdout)
    reports = report if isinstance(report, list) else [report]
    failed = [c for r in reports for c in r.get("results", {}).get("failed_checks", []) if not skipped(c, skips)]
    passed = sum(r.get("summary", {}).get("passed", 0) for r in reports)
    return failed, passed


def describe(check: dict) -> str:
    return f"{check['check_id']} {check['check_name']} ({check.get('resource')})"
