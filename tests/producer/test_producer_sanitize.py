"""Credentials never leave the producer; the key is login.uuid; nothing is dropped."""

import copy
import json

from userpipeline.jobs.producer.sanitize import CREDENTIALS, to_message, without_credentials

USER = {
    "gender": "female",
    "name": {"title": "Ms", "first": "Ярослава", "last": "Гнатишин"},
    "email": "iaroslava.hnatyshyn@gmail.com",
    "login": {"uuid": "0b1f8c7e-5d0a-4c8e-9a55-3f1d2e4b6a70", "username": "tinycat101", "password": "lucas1",
              "salt": "kExBOgEF", "md5": "m" * 32, "sha1": "s" * 40, "sha256": "h" * 64},
    "dob": {"date": "1986-04-02T08:07:11.004Z", "age": 39},
    "nat": "UA",
}


def test_credentials_are_removed_and_the_rest_kept():
    original = copy.deepcopy(USER)
    message = to_message(USER)
    published = json.loads(message.value)
    assert published["login"] == {"uuid": USER["login"]["uuid"], "username": "tinycat101"}
    assert {k: v for k, v in published.items() if k != "login"} == {k: v for k, v in USER.items() if k != "login"}
    assert message.key == USER["login"]["uuid"].encode()
    assert USER == original, "the source record is not modified"


def test_values_are_compact_utf8_not_escaped():
    value = to_message(USER).value
    assert "Ярослава".encode() in value and b"\\u" not in value and b": " not in value


def test_records_without_a_usable_uuid_get_a_null_key_but_are_published():
    for login in ({"username": "x"}, {"uuid": None}, {"uuid": ""}, {"uuid": 42}, "not-an-object"):
        message = to_message({**USER, "login": login})
        assert message.key is None
        assert json.loads(message.value)["nat"] == "UA"
    assert to_message({k: v for k, v in USER.items() if k != "login"}).key is None


def test_raw_bytes_are_published_as_they_are_with_null_key():
    for raw in (b'{"gender":"female","name":{"first":"Ann"', b'"just a string"', b"[1, 2]", b"\xff\xfe"):
        message = to_message(raw)
        assert (message.key, message.value) == (None, raw)


def test_raw_bytes_holding_a_user_object_are_treated_like_one():
    message = to_message(json.dumps(USER).encode())
    assert message.key == USER["login"]["uuid"].encode()
    assert b"password" not in message.value


def test_credentials_inside_arrays_and_unparseable_text_are_removed_too():
    array = to_message(json.dumps([USER, {"login": {"salt": "abc"}}]).encode())
    assert not any(c.encode() in array.value for c in CREDENTIALS)
    truncated = json.dumps(USER).encode()[:-20]
    message = to_message(truncated)
    assert b"lucas1" not in message.value and b"kExBOgEF" not in message.value and b"h" * 64 not in message.value
    assert message.value.startswith(b'{"gender"')


def test_without_credentials_only_touches_login_objects():
    other = {"password": "kept: not a login", "nested": {"login": {"uuid": "u", "md5": "x"}}}
    assert without_credentials(other) == {"password": "kept: not a login", "nested": {"login": {"uuid": "u"}}}


def test_credentials_nested_anywhere_in_a_user_are_removed():
    user = {**USER, "extra": {"login": {"uuid": "x", "sha1": "leak"}}, "list": [{"login": {"password": "leak"}}]}
    value = to_message(user).value
    assert b"leak" not in value and not any(f'"{c}"'.encode() in value for c in CREDENTIALS)
    assert json.loads(value)["extra"] == {"login": {"uuid": "x"}}
