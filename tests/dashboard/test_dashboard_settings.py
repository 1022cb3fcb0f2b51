"""Dashboard settings: spec values, environment overrides, path prefix normalisation."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from userpipeline.dashboard.settings import DashboardSettings

SPEC = """\
apiVersion: userpipeline.io/v1alpha1
kind: UserPipeline
metadata: {name: demo}
spec:
  privacy: {kAnonymity: 10}
  dashboard: {refreshSeconds: 15}
"""


def test_defaults_without_spec_or_environment() -> None:
    settings = DashboardSettings.from_env(environ={})
    assert (settings.refresh_seconds, settings.k_anonymity, settings.path_prefix) == (5, 5, "/")
    assert settings.mongo_uri.get_secret_value() == "mongodb://127.0.0.1:27017/"


def test_spec_then_environment(tmp_path: Path) -> None:
    spec = tmp_path / "pipeline.yaml"
    spec.write_text(SPEC)
    env = {"USERPIPELINE_MONGO_URI": "mongodb://reader:pw@mongo:27017/?authSource=userpipeline",
           "USERPIPELINE_MONGO_DATABASE": "analytics", "USERPIPELINE_SPEC_FILE": str(spec)}
    settings = DashboardSettings.from_env(environ=env)
    assert (settings.refresh_seconds, settings.k_anonymity, settings.mongo_database) == (15, 10, "analytics")
    assert "pw" not in repr(settings)
    overridden = DashboardSettings.from_env(environ={**env, "USERPIPELINE_DASHBOARD_REFRESH_SECONDS": "2"})
    assert overridden.refresh_seconds == 2 and overridden.k_anonymity == 10


@pytest.mark.parametrize("raw, prefix", [("", "/"), ("/", "/"), ("dash", "/dash/"), ("/team/dash", "/team/dash/"), ("/x/", "/x/")])
def test_path_prefix_is_normalised(raw: str, prefix: str) -> None:
    assert DashboardSettings(path_prefix=raw).path_prefix == prefix


def test_bad_refresh_interval_is_rejected() -> None:
    with pytest.raises(ValidationError, match="refresh_seconds"):
        DashboardSettings.from_env(environ={"USERPIPELINE_DASHBOARD_REFRESH_SECONDS": "0"})
