"""HMAC pseudonyms: standard HMAC-SHA256, normalised input, a clear error without a key, no key in repr."""

import hashlib
import hmac
import os
import subprocess
import sys

import pytest
from pydantic import SecretStr

from userpipeline.jobs.endpoints import Endpoints
from userpipeline.jobs.stream.pseudonymize import MissingKeyError, Pseudonymizer


def test_digest_is_hmac_sha256_of_the_normalised_value():
    p = Pseudonymizer(b"secret", "k1")
    expected = hmac.new(b"secret", b"ann.lee@example.com", hashlib.sha256).hexdigest()
    assert p.digest("email", "  Ann.Lee@Example.COM ") == expected
    assert p.digest("phone", " 01-23 ") == hmac.new(b"secret", b"01-23", hashlib.sha256).hexdigest()
    assert p.digest("email", "") is None and p.digest("phone", None) is None


def test_fields_not_listed_are_dropped():
    p = Pseudonymizer(b"secret", "k1", ("email",))
    assert p.digest("email", "a@b.c") is not None and p.digest("phone", "123") is None


def test_a_different_key_gives_a_different_pseudonym():
    assert Pseudonymizer(b"k1", "1").digest("email", "a@b.c") != Pseudonymizer(b"k2", "2").digest("email", "a@b.c")


def test_missing_key_fails_with_instructions():
    with pytest.raises(MissingKeyError, match="USERPIPELINE_HMAC_KEY"):
        Pseudonymizer.from_endpoints(Endpoints())
    p = Pseudonymizer.from_endpoints(Endpoints(hmac_key=SecretStr("abc"), hmac_key_id="k9"))
    assert p.key_id == "k9" and "abc" not in repr(p)


def test_the_job_refuses_to_start_without_a_key(tmp_path):
    spec = tmp_path / "pipeline.yaml"
    spec.write_text("apiVersion: userpipeline.io/v1alpha1\nkind: UserPipeline\nmetadata: {name: t}\nspec: {}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("USERPIPELINE_")}
    result = subprocess.run([sys.executable, "-m", "userpipeline.jobs.stream", "--spec", str(spec), "--checkpoint",
                             str(tmp_path / "cp")], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "USERPIPELINE_HMAC_KEY is not set" in result.stderr
    assert not (tmp_path / "cp").exists()
