"""Where the bootstrap put the jars and binaries: ~/.cache/userpipeline/manifest.json."""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel


class ArtifactsMissing(RuntimeError):
    pass


def cache_dir() -> Path:
    return Path(os.environ.get("USERPIPELINE_CACHE", Path.home() / ".cache" / "userpipeline"))


class Artifacts(BaseModel):
    java_home: Path
    kafka_lib: Path
    cassandra_lib: Path
    spark_jars: list[Path]
    ferretdb: Path
    kube: Path | None = None
    chromium: Path | None = None
    chromedriver: Path | None = None

    @property
    def java(self) -> Path:
        return self.java_home / "bin" / "java"


@lru_cache(maxsize=1)
def load_artifacts() -> Artifacts:
    path = cache_dir() / "manifest.json"
    if not path.exists():
        raise ArtifactsMissing(f"{path} not found: run `make bootstrap` first")
    artifacts = Artifacts.model_validate(json.loads(path.read_text()))
    if not artifacts.java.exists():
        raise ArtifactsMissing(f"Java 17 not found at {artifacts.java}: install openjdk-17 and run `make bootstrap`")
    for name in ("kafka_lib", "cassandra_lib", "ferretdb"):
        if not getattr(artifacts, name).exists():
            raise ArtifactsMissing(f"{name} missing at {getattr(artifacts, name)}: run `make bootstrap`")
    return artifacts
