"""Dashboard configuration: the UserPipeline spec, then the environment, then defaults.

Environment (all optional):
- `USERPIPELINE_MONGO_URI`, `USERPIPELINE_MONGO_DATABASE` (via `Endpoints.from_env()`): a read-only
  user (`read` role on the database) is enough, the dashboard never writes.
- `USERPIPELINE_SPEC_FILE`: a UserPipeline YAML to take `dashboard.refreshSeconds` and
  `privacy.kAnonymity` from.
- `USERPIPELINE_DASHBOARD_REFRESH_SECONDS`, `USERPIPELINE_DASHBOARD_K_ANONYMITY`: override the spec.
- `USERPIPELINE_DASHBOARD_PATH_PREFIX`: URL prefix when served behind an Ingress at a sub-path
  (e.g. `/dashboard/`); the Ingress must forward the path unchanged.
- `USERPIPELINE_DASHBOARD_MONGO_TIMEOUT_MS`: how long a read waits for MongoDB before the page says
  it is unreachable.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from pydantic import BaseModel, Field, SecretStr, field_validator

from userpipeline.jobs.endpoints import Endpoints
from userpipeline.operator.spec.model import UserPipelineSpec, load_userpipeline

ENV_PREFIX = "USERPIPELINE_DASHBOARD_"


class DashboardSettings(BaseModel):
    mongo_uri: SecretStr = Field(default_factory=lambda: Endpoints().mongo_uri)
    mongo_database: str = "userpipeline"
    refresh_seconds: int = Field(5, ge=1, le=3600)
    k_anonymity: int = Field(5, ge=1, le=1000)
    path_prefix: str = Field("/", description="URL prefix, starts and ends with '/'")
    mongo_timeout_ms: int = Field(1500, ge=100, le=60000)
    top_domains: int = Field(10, ge=1, le=50)
    title: str = "User pipeline"

    @field_validator("path_prefix")
    @classmethod
    def _normalise_prefix(cls, value: str) -> str:
        value = "/" + value.strip().strip("/")
        return value if value == "/" else value + "/"

    @classmethod
    def from_env(cls, spec_file: Path | None = None, environ: Mapping[str, str] | None = None) -> DashboardSettings:
        env = os.environ if environ is None else environ
        endpoints = Endpoints.from_env(dict(env))
        spec_path = spec_file or (Path(env["USERPIPELINE_SPEC_FILE"]) if env.get("USERPIPELINE_SPEC_FILE") else None)
        spec = load_userpipeline(spec_path).spec if spec_path else UserPipelineSpec()
        values: dict[str, object] = {
            "mongo_uri": endpoints.mongo_uri,
            "mongo_database": endpoints.mongo_database,
            "refresh_seconds": spec.dashboard.refresh_seconds,
            "k_anonymity": spec.privacy.k_anonymity,
        }
        for name in ("refresh_seconds", "k_anonymity", "path_prefix", "mongo_timeout_ms", "top_domains", "title"):
            if f"{ENV_PREFIX}{name.upper()}" in env:
                values[name] = env[f"{ENV_PREFIX}{name.upper()}"]
        return cls.model_validate(values)
