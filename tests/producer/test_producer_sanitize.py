"""Credentials never leave the producer, nor fields no purpose needs; the key is login.uuid; nothing else is dropped."""

import copy
import json

import pytest

from userpipeline.jobs.producer.sanitize import CREDENTIALS, UNNEEDED, to_message, without_credentials
from userpipeline.jobs.stream.schema import USER_SCHEMA

USER = {
    "gender": "female",
    "name": {"title": "Ms", "first": "Ярослава", "last": "Гнатишин"},
    "email": "iaroslava.hnatyshyn@gmail.com",
    "login": {"uuid": "0b1f8c7e-5d0a-4c8e-9a55-3f1d2e4b6a70", "username": "tinycat101", "password": "lucas1",
              "salt": "kExBOgEF", "md5": "m" * 32, "sha1": "s" * 40, "sha256": "h" * 64},
    "dob": {"date": "1986-04-02T08:07:11.004Z", "age": 39},
    "nat": "UA",
}
FULL_USER = {
    **USER,
    "location": {"street": {"number": 12, "name": "Хрещатик"}, "city": "Київ", "state": "Київська", "country": "Ukraine",
                 "postcode": 10001, "coordinates": {"latitude": "50.4501", "longitude": "30.5234"},
                 "timezone": {"offset": "+2:00", "description": "Kyiv"}},
    "id": {"name": "SSN", "value": "123-45-6789"},
    "picture": {"large": "https://randomuser.me/api/portraits/women/7.jpg",
                "medium": "https://randomuser.me/api/portraits/med/women/7.jpg",
                "thumbnail": "https://randomuser.me/api/portraits/thumb/women/7.jpg"},
}
SECRETS = (b"lucas1", b"kExBOgEF", b"m" * 32, b"s" * 40, b"h" * 64)


def test_credentials_and_unneeded_fields_are_removed_and_the_rest_kept():
    original = copy.deepcopy(FULL_USER)
    message = to_message(FULL_USER)
    published = json.loads(message.value)
    assert published["login"] == {"uuid": USER["login"]["uuid"]}
    assert "id" not in published and "picture" not in published and "coordinates" not in published["location"]
    assert published["location"] == {k: v for k, v in FULL_USER["location"].items() if k != "coordinates"}
    assert {k: v for k, v in published.items() if k not in ("login", "location")} == {
        k: v for k, v in FULL_USER.items() if k not in ("login", "location", "id", "picture")}
    assert b"123-45-6789" not in message.value and b"tinycat101" not in message.value and b"50.4501" not in message.value
    assert message.key == USER["login"]["uuid"].encode()
    assert FULL_USER == original, "the source record is not modified"


def _paths(struct, prefix=""):
    for field in struct.fields:
        path = f"{prefix}{field.name}"
        yield path
        if hasattr(field.dataType, "fields"):
            yield from _paths(field.dataType, f"{path}.")


def test_no_dropped_field_is_one_the_stream_reads():
    read = set(_paths(USER_SCHEMA))
    assert not read & set(UNNEEDED), "the stream reads a field the producer drops: update docs/data-contract.md first"
    assert not read & set(CREDENTIALS)
    assert "login.uuid" in read and "dob.date" in read


@pytest.mark.parametrize("key", ["Password", "PASSWORD", "Salt", "MD5", "Sha1", "SHA256"])
def test_credentials_are_removed_whatever_their_letter_case(key):
    user = {**USER, "login": {"uuid": USER["login"]["uuid"], key: "leak-secret"}, "extra": {key: "leak-secret"}}
    value = to_message(user).value
    assert b"leak-secret" not in value and key.encode() not in value
    assert json.loads(value)["login"] == {"uuid": USER["login"]["uuid"]}


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
    message = to_message(json.dumps(FULL_USER).encode())
    assert message.key == USER["login"]["uuid"].encode()
    assert json.loads(message.value) == json.loads(to_message(FULL_USER).value)
    assert b"password" not in message.value and b"123-45-6789" not in message.value


def test_credentials_inside_arrays_and_unparseable_text_are_removed_too():
    array = to_message(json.dumps([USER, {"login": {"salt": "abc"}}]).encode())
    assert not any(c.encode() in array.value for c in CREDENTIALS)
    truncated = json.dumps(USER).encode()[:-20]
    message = to_message(truncated)
    assert not any(secret in message.value for secret in SECRETS)
    assert message.value.startswith(b'{"gender"')


@pytest.mark.parametrize("raw", [
    b'{"login": {"uuid": "u", "Password": "lucas1", "SALT": "kExBOgEF"}, "name": ',  # any case
    b'{"login": {"uuid": "u", "password": "luca',  # cut inside the value
    b'{"login": {"uuid": "u", "password": "lucas1\\"x", "md5": ' + b'"' + b"m" * 32,  # escaped quote, cut short
    b"{login: {uuid: u, password: lucas1, salt: 'kExBOgEF'}",  # unquoted keys, a single-quoted value
    b'{"login": {"uuid": "u", "sha1": "' + b"s" * 40 + b'", "sha256": "' + b"h" * 64 + b'"}} trailing',
    b'{"password" : "lucas1" , "salt":"kExBOgEF",',
])
def test_unparseable_payloads_carry_no_credential(raw):
    message = to_message(raw)
    assert message.key is None
    assert not any(secret in message.value for secret in SECRETS), message.value
    assert message.value.startswith(raw[:10]), "the rest of the payload is kept for the dead letter"
    with pytest.raises(ValueError):
        json.loads(message.value)  # still malformed: the stream dead-letters it for the same reason


def test_unparseable_payloads_carry_no_unneeded_field_either():
    text = json.dumps(FULL_USER, ensure_ascii=False).encode()
    message = to_message(text[: text.index(b'"thumbnail"') + 30])
    assert USER["login"]["uuid"].encode() in message.value, "the id stays: it names the record"
    for unneeded in (b"123-45-6789", b"tinycat101", b"50.4501", b"30.5234", b"portraits/women/7.jpg", *SECRETS):
        assert unneeded not in message.value


def test_without_credentials_removes_credential_keys_at_any_depth_in_any_case():
    other = {"Password": "x", "note": "password", "nested": {"login": {"uuid": "u", "md5": "x"}}, "list": [{"SALT": 1}]}
    assert without_credentials(other) == {"note": "password", "nested": {"login": {"uuid": "u"}}, "list": [{}]}


def test_credentials_nested_anywhere_in_a_user_are_removed():
    user = {**USER, "extra": {"login": {"uuid": "x", "sha1": "leak"}}, "list": [{"login": {"password": "leak"}}]}
    value = to_message(user).value
    assert b"leak" not in value and not any(f'"{c}"'.encode() in value for c in CREDENTIALS)
    assert json.loads(value)["extra"] == {"login": {"uuid": "x"}}
