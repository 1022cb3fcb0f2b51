"""The key ring (issue 11): ids that follow the key, retired keys still matched, a local rotation that keeps the
old key, and nothing that prints or stores a key. No services."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import stat
import subprocess
import sys

import pytest
from pydantic import SecretStr

from userpipeline.jobs.endpoints import Endpoints
from userpipeline.jobs.stream.pseudonymize import KeyRingError, Pseudonymizer, key_id_of
from userpipeline.operator.local.platform import LocalPlatform


def test_the_key_id_follows_the_key_and_reveals_nothing_of_it():
    a, b = b"first-key-" + b"x" * 32, b"second-key-" + b"y" * 32
    assert key_id_of(a) == key_id_of(a) != key_id_of(b)
    assert key_id_of(a).startswith("local-") and len(key_id_of(a)) == len("local-") + 12
    assert key_id_of(a)[6:] not in hashlib.sha256(a).hexdigest()  # not a plain hash of the key: nobody can test a guess
    assert Pseudonymizer.from_endpoints(Endpoints(hmac_key=SecretStr(a.decode()))).key_id == key_id_of(a, "key")
    assert Pseudonymizer.from_endpoints(Endpoints(hmac_key=SecretStr("k"), hmac_key_id="k8s-1")).key_id == "k8s-1"


def test_retired_keys_are_matched_never_used_to_write():
    retired = json.dumps({"old-1": "old key", "old-2": "older key"})
    p = Pseudonymizer.from_endpoints(Endpoints(hmac_key=SecretStr("new key"), hmac_key_id="new-2",
                                               hmac_retired_keys=SecretStr(retired)))
    assert [key_id for key_id, _ in p.ring] == ["new-2", "old-1", "old-2"]
    mac = lambda key: hmac.new(key, b"ann@mail.example", hashlib.sha256).hexdigest()  # noqa: E731
    assert p.digest("email", " Ann@Mail.example") == mac(b"new key")
    assert p.digests("email", "ann@MAIL.example") == {"new-2": mac(b"new key"), "old-1": mac(b"old key"),
                                                       "old-2": mac(b"older key")}
    assert "old key" not in repr(p) and "new key" not in repr(p)
    # The active key listed among the retired ones (a rotation half done) is the active one, once.
    again = Pseudonymizer.from_endpoints(Endpoints(hmac_key=SecretStr("new key"), hmac_key_id="new-2",
                                                   hmac_retired_keys=SecretStr(json.dumps({"new-2": "new key"}))))
    assert again.ring == (("new-2", b"new key"),)


@pytest.mark.parametrize("retired, says", [
    ("not json", "not JSON"), ('["a"]', "JSON object"), ('{"bad id!": "k"}', "retired key id"), ('{"old": ""}', "empty"),
    ('{"new-2": "another key"}', "names two keys"),
])
def test_a_bad_key_ring_is_refused_without_showing_a_key(retired, says):
    with pytest.raises(KeyRingError, match=says) as caught:
        Pseudonymizer.from_endpoints(Endpoints(hmac_key=SecretStr("new key"), hmac_key_id="new-2",
                                               hmac_retired_keys=SecretStr(retired)))
    assert "another key" not in str(caught.value) and "new key" not in str(caught.value)


def test_a_local_rotation_keeps_the_old_key_and_the_ids_follow_the_keys(tmp_path):
    platform = LocalPlatform(tmp_path / "state")
    first = platform.endpoints()
    first_key = first.hmac_key.get_secret_value()
    assert first.hmac_key_id == key_id_of(first_key.encode()) and first.hmac_retired_keys is None
    assert platform.endpoints().hmac_key_id == first.hmac_key_id  # stable while the key is

    rotation = platform.rotate_key()
    second = platform.endpoints()
    assert (rotation.retired_id, rotation.active_id) == (first.hmac_key_id, second.hmac_key_id) != (second.hmac_key_id,) * 2
    assert json.loads(second.hmac_retired_keys.get_secret_value()) == {first.hmac_key_id: first_key}
    retired_file = tmp_path / "state" / "secrets" / "retired" / f"{first.hmac_key_id}.key"
    assert stat.S_IMODE(retired_file.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "state" / "secrets" / "hmac.key").stat().st_mode) == 0o600

    platform.rotate_key()
    ring = Pseudonymizer.from_endpoints(platform.endpoints()).ring
    assert [key_id for key_id, _ in ring][1:] == sorted([first.hmac_key_id, second.hmac_key_id])
    assert ring[0][0] not in (first.hmac_key_id, second.hmac_key_id)
    assert first.to_env()["USERPIPELINE_HMAC_KEY_ID"] == first.hmac_key_id  # what the local processes get


def test_rotate_key_command_prints_key_ids_only(tmp_path):
    state = tmp_path / "state"
    env = {**os.environ, "USERPIPELINE_STATE_DIR": str(state)}
    command = [sys.executable, "-m", "userpipeline.operator.cli", "rotate-key"]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 1 and "no HMAC key" in result.stderr
    key = LocalPlatform(state).hmac_key()
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    new_key = LocalPlatform(state).hmac_key()
    assert f"new key id {key_id_of(new_key.encode())}; retired {key_id_of(key.encode())}" in " ".join(result.stdout.split())
    assert key not in result.stdout + result.stderr and new_key not in result.stdout + result.stderr
