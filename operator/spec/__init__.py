"""The UserPipeline spec: one pydantic model, the single source of truth for the CRD schema,
the Kubernetes operator and the local runner."""

from userpipeline.operator.spec.durations import parse_duration
from userpipeline.operator.spec.model import (
    API_VERSION,
    GROUP,
    KIND,
    PLURAL,
    SHORT_NAME,
    VERSION,
    UserPipeline,
    UserPipelineSpec,
    load_userpipeline,
)

__all__ = [
    "API_VERSION",
    "GROUP",
    "KIND",
    "PLURAL",
    "SHORT_NAME",
    "VERSION",
    "UserPipeline",
    "UserPipelineSpec",
    "load_userpipeline",
    "parse_duration",
]
