"""The key ring reaches the stream's and the purge's pods: the active key and id, and the retired keys, which
a Secret made before any rotation does not have (an optional key, so such pods still start)."""

from __future__ import annotations

from userpipeline.operator.kube import purge, stream
from userpipeline.operator.kube.parts import Context
from userpipeline.operator.kube.settings import OperatorSettings
from userpipeline.operator.spec import UserPipelineSpec


def _refs(env: list[dict]) -> dict[str, dict]:
    return {e["name"]: e["valueFrom"]["secretKeyRef"] for e in env if e["name"].startswith("USERPIPELINE_HMAC_")}


def test_the_stream_gets_the_whole_key_ring_from_the_key_secret() -> None:
    spec = UserPipelineSpec.model_validate({"privacy": {"keySecret": "my-keys"}})
    ctx = Context("p", "ns", "uid", spec, OperatorSettings(), kube=None)
    driver_env = stream.spark_application(ctx)["spec"]["driver"]["env"]
    assert _refs(driver_env) == {
        "USERPIPELINE_HMAC_KEY": {"name": "my-keys", "key": "key"},
        "USERPIPELINE_HMAC_KEY_ID": {"name": "my-keys", "key": "keyId"},
        "USERPIPELINE_HMAC_RETIRED_KEYS": {"name": "my-keys", "key": "retiredKeys", "optional": True},
    }
    assert _refs(stream.spark_application(ctx)["spec"]["executor"]["env"]) == _refs(driver_env)
    purge_env = purge.cron_job(ctx)["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["env"]
    assert "USERPIPELINE_HMAC_KEY" not in {e["name"] for e in purge_env}  # the purge needs no key
