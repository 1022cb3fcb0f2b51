"""Offline generator of users in the exact JSON shape of randomuser API 1.4.

Deterministic: record `i` of seed `s` depends only on (s, i) and the UTC day, so a restarted producer
can resume at any index and tests can regenerate what was sent. Quirks kept from the real API:
postcode is a JSON number for most nationalities and a string for CA, GB, NL, NO; `id` is
`{"name": "", "value": null}` for IR, NZ, TR, UA; Cyrillic (UA), Persian (IR) and accented names;
ISO dates with milliseconds and `Z`. Unlike the API (which uses example.com only), emails are spread
over 15 domains with a skewed distribution (see `synthetic_data.EMAIL_DOMAINS`), 1 % of them with an
upper-cased domain.

Dates of birth keep every birthday at least two days away from the generation day, so an age
computed on the next day is still the same; the birthday boundary is covered by `edge_records()`.

Selection is exact: with `broken_ratio` r, record i is broken when floor((i+1)r) > floor(ir), so the
first n records hold exactly floor(nr) broken ones; minors likewise with `minor_ratio`. Broken records
cycle through the dead-letter reasons of docs/data-contract.md (oversized ones are rare: 1 in 50,
each a little over 1 MiB). Variants per reason (what the stream has to recognise):
- malformed_json: the value cut short; or its first key unquoted
- not_an_object: the user wrapped in a JSON array; or a bare JSON string
- missing_id: `login.uuid` absent; or null
- missing_dob: `dob` absent; or null; or `dob.date` absent
- invalid_dob: `dob.date` "not-a-date"; or month 13; or in the future; or 170 years ago
- wrong_type: `dob.age` a word; or `name` a string; or `location` a string; or `registered` a number
- oversized: a valid user with an extra `notes` field making the value > 1 MiB
"""

from __future__ import annotations

import base64
import bisect
import functools
import hashlib
import itertools
import json
import random
import re
import string
import unicodedata
import uuid as uuidlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any, TypeVar

from userpipeline.jobs.producer import synthetic_data as data
from userpipeline.jobs.producer.sanitize import without_credentials

T = TypeVar("T")

STORED = "stored"
FILTERED = "filtered"
REASONS = ("malformed_json", "not_an_object", "missing_id", "missing_dob", "invalid_dob", "wrong_type", "oversized")
ONE_MIB = 1024 * 1024
_REASON_WEIGHTS = {"malformed_json": 8, "not_an_object": 7, "missing_id": 8, "missing_dob": 8, "invalid_dob": 9, "wrong_type": 9, "oversized": 1}


def _reason_cycle() -> tuple[str, ...]:
    """A cycle of 50 reasons in the weights above, interleaved (stride scheduling), oversized early."""
    slots = sorted((k / w + (0 if r == "oversized" else 0.5 / w), r) for r, w in _REASON_WEIGHTS.items() for k in range(w))
    cycle = [r for _, r in slots]
    cycle.remove("oversized")
    cycle.insert(3, "oversized")
    return tuple(cycle)


REASON_CYCLE = _reason_cycle()
NAT_CODES = data.NAT_CODES


@dataclass(frozen=True)
class SyntheticRecord:
    index: int
    payload: dict[str, Any] | bytes  # a user object (with credentials, like the API), or raw bytes
    expected: str  # STORED, FILTERED (younger than 18) or a dead-letter reason code
    marker: str  # appears verbatim in the first 4 KiB of the published value: identifies the record
    age: int | None  # exact age on the generation day; None for broken records


def utc_today() -> date:
    return datetime.now(timezone.utc).date()


def _hit(index: int, ratio: float, phase: float = 0.0) -> bool:
    return int((index + 1) * ratio + phase) > int(index * ratio + phase)


def _rng(seed: int, index: int) -> random.Random:
    return random.Random((seed << 32) | index)


# random.Random's choice/randint are slow in pure Python; these use the C random() and suffice here.
def _pick(rng: random.Random, items: Sequence[T]) -> T:
    return items[int(rng.random() * len(items))]


def _int(rng: random.Random, low: int, high: int) -> int:
    """An integer in [low, high]."""
    return low + int(rng.random() * (high - low + 1))


_UUID4_CLEAR = ~((0xF000 << 64) | (0xC000 << 48))
_UUID4_SET = (0x4000 << 64) | (0x8000 << 48)


def uuid4_text(bits: int) -> str:
    """`str(uuid.UUID(int=bits, version=4))`, without building a UUID object."""
    h = f"{(bits & _UUID4_CLEAR) | _UUID4_SET:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def fresh_uuid(seed: int, index: int) -> str:
    return uuid4_text(_rng(seed, index).getrandbits(128))


@dataclass(frozen=True)
class SyntheticSource:
    seed: int = 42
    minor_ratio: float = 0.05
    broken_ratio: float = 0.0
    resend_ratio: float = 0.0  # share of records that re-send an earlier user (same uuid, new fields)
    today: date = field(default_factory=utc_today)

    def records(self, start: int = 0, stop: int | None = None) -> Iterator[SyntheticRecord]:
        index = start
        while stop is None or index < stop:
            yield self.record(index)
            index += 1

    def record(self, index: int, *, lean: bool = False) -> SyntheticRecord:
        """Record `index`. `lean`: a valid user without what the producer drops anyway (credentials, national
        id, coordinates, picture, username), built from the same random draws, so `to_message` gives the same
        message for less work. Broken records are always whole (how they are cut depends on their length)."""
        rng = _rng(self.seed, index)
        uid = uuid4_text(rng.getrandbits(128))
        if _hit(index, self.broken_ratio):
            reason = REASON_CYCLE[int(index * self.broken_ratio) % len(REASON_CYCLE)]
            payload, marker = break_user(reason, make_user(rng, uid, _int(rng, 18, 85), self.today), rng, self.today)
            return SyntheticRecord(index, payload, reason, marker, None)
        minor = _hit(index, self.minor_ratio, 0.5)
        if not minor and index > 0 and rng.random() < self.resend_ratio:
            uid = fresh_uuid(self.seed, rng.randrange(index))
        user = make_user(rng, uid, _int(rng, 10, 17) if minor else _adult_age(rng), self.today, lean=lean)
        age = user["dob"]["age"]  # age_on(born, today), as make_user computed it
        return SyntheticRecord(index, user, STORED if age >= 18 else FILTERED, uid, age)


def expected_outcome(record: SyntheticRecord, minimum_age: int = 18) -> str:
    """What the stream must do with `record` under `spec.privacy.minimumAge`."""
    if record.age is None:
        return record.expected
    return STORED if record.age >= minimum_age else FILTERED


def _adult_age(rng: random.Random) -> int:
    # Skewed towards 25-45, with a tail up to 95, so every age band has users.
    return min(95, 18 + int(rng.gammavariate(2.2, 9.0)))


# --- one user -----------------------------------------------------------------------------------


def age_on(born: date, today: date) -> int:
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))


def years_before(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year - years)
    except ValueError:  # 29 February
        return day.replace(year=day.year - years, day=28)


def api_date(day: date, rng: random.Random) -> str:
    ms = int(rng.random() * 86_400_000)
    return "%sT%02d:%02d:%02d.%03dZ" % (day.isoformat(), ms // 3_600_000, ms // 60_000 % 60, ms // 1000 % 60, ms % 1000)


def parse_api_date(text: str) -> date:
    return date.fromisoformat(text[:10])


_PLACEHOLDER = re.compile(r"(#+|@+|DDMMYY)")
_UPPER = string.ascii_uppercase
_ALNUM_ONLY = bytes.maketrans(b"+/", b"xz")  # base64 letters and digits only, like the API's salts


@functools.cache
def _compiled(pattern: str) -> tuple[str, tuple[tuple[int, int, int], ...], int, str]:
    """`pattern` as a format string with one `{}` per placeholder, the placeholders' fill operations
    (digits: a slice of one random number of all the pattern's digits; DDMMYY; letters), that number's
    scale and width. No pattern has more than 12 digits, well within one random()'s 53 bits."""
    parts = _PLACEHOLDER.split(pattern)
    fmt = "".join("{}" if i % 2 else part.replace("{", "{{").replace("}", "}}") for i, part in enumerate(parts))
    ops, width = [], 0
    for token in parts[1::2]:
        if token[0] == "#":
            ops.append((_DIGITS, width, width + len(token)))
            width += len(token)
        elif token == "DDMMYY":
            ops.append((_BIRTHDAY, 0, 0))
        else:
            ops.append((_LETTERS, len(token), 0))
    return fmt, tuple(ops), 10**width, f"0{width}d"


_DIGITS, _BIRTHDAY, _LETTERS = range(3)


def _fill(pattern: str, rng: random.Random, born: date) -> str:
    fmt, ops, scale, spec = _compiled(pattern)
    r = rng.random
    digits = format(int(r() * scale), spec)
    return fmt.format(*[
        digits[a:b] if kind == _DIGITS
        else f"{born.day:02d}{born.month:02d}{born.year % 100:02d}" if kind == _BIRTHDAY
        else "".join([_UPPER[int(r() * 26)] for _ in range(a)])
        for kind, a, b in ops
    ])


@functools.cache
def _ascii(text: str) -> str:
    text = unicodedata.normalize("NFKD", text.lower().translate(data.TRANSLIT))
    return "".join(ch for ch in text if ch.isascii() and (ch.isalnum() or ch == "'")).replace("'", "")


_DOMAINS = tuple(domain for domain, _ in data.EMAIL_DOMAINS)
_DOMAIN_BOUNDS = tuple(itertools.accumulate(weight for _, weight in data.EMAIL_DOMAINS))


def _email(rng: random.Random, first: str, last: str) -> str:
    domain = _DOMAINS[bisect.bisect(_DOMAIN_BOUNDS, rng.random() * _DOMAIN_BOUNDS[-1])]
    if rng.random() < 0.01:
        domain = domain.upper()
    return f"{_ascii(first)}.{_ascii(last)}@{domain}"


def _login(rng: random.Random, uid: str, lean: bool = False) -> dict[str, str]:
    r = rng.random
    password = data.PASSWORDS[int(r() * len(data.PASSWORDS))]
    salt_bytes = rng.randbytes(6)
    if lean:  # the same draws as below, nothing built from them
        r(), r(), r()
        return {"uuid": uid}
    salt = base64.b64encode(salt_bytes).translate(_ALNUM_ONLY).decode()  # 8 letters and digits
    salted = (password + salt).encode()
    return {
        "uuid": uid,
        "username": f"{data.USERNAME_1[int(r() * len(data.USERNAME_1))]}{data.USERNAME_2[int(r() * len(data.USERNAME_2))]}{100 + int(r() * 900)}",
        "password": password,
        "salt": salt,
        "md5": hashlib.md5(salted).hexdigest(),
        "sha1": hashlib.sha1(salted).hexdigest(),
        "sha256": hashlib.sha256(salted).hexdigest(),
    }


def _postcode(kind: str, rng: random.Random) -> int | str:
    if kind == "int5":
        return _int(rng, 10000, 99999)
    if kind == "int4":
        return _int(rng, 1000, 9999)
    return _fill(kind, rng, date(2000, 1, 1))


_FIRST_REGISTRATION = date(2002, 3, 21)
_ONE_DAY = timedelta(days=1)


def make_user(rng: random.Random, uid: str, age: int, today: date, *, lean: bool = False) -> dict[str, Any]:
    """One API 1.4 user of exactly `age` years on `today` (birthday at least two days away).

    `lean`: without credentials, `username`, `id`, `coordinates` and `picture` (see SyntheticSource.record);
    every random draw is made either way, in the same order, so both give the same other fields."""
    r = rng.random  # picks inlined: this runs once per record, at tens of thousands per second
    code = NAT_CODES[int(r() * len(NAT_CODES))]
    nat = data.NATS[code]
    male = r() < 0.5
    gender = "male" if male else "female"
    names = nat.male if male else nat.female
    first = names[int(r() * len(names))]
    last = nat.last[int(r() * len(nat.last))]
    titles = data.FRENCH_TITLES[gender] if code in ("FR", "CH") else ("Mr",) if male else data.FEMALE_TITLES
    born = years_before(today, age) - timedelta(days=2 + int(r() * 361))
    first_registration = max(_FIRST_REGISTRATION, years_before(born, -13))
    registered = first_registration + timedelta(days=int(r() * max(1, (today - first_registration).days)))
    registered = min(registered, today - _ONE_DAY)
    offset, description = data.TIMEZONES[int(r() * len(data.TIMEZONES))]
    portrait = int(r() * 100) if male else int(r() * 97)
    name = {"title": titles[int(r() * len(titles))], "first": first, "last": last}
    location = {
        "street": {"number": 1 + int(r() * 9999), "name": nat.streets[int(r() * len(nat.streets))]},
        "city": nat.cities[int(r() * len(nat.cities))],
        "state": nat.states[int(r() * len(nat.states))],
        "country": nat.country,
        "postcode": _postcode(nat.postcode, rng),
    }
    latitude, longitude = r() * 180 - 90, r() * 360 - 180
    if not lean:
        location["coordinates"] = {"latitude": f"{latitude:.4f}", "longitude": f"{longitude:.4f}"}
    location["timezone"] = {"offset": offset, "description": description}
    user = {
        "gender": gender,
        "name": name,
        "location": location,
        "email": _email(rng, first, last),
        "login": _login(rng, uid, lean),
        "dob": {"date": api_date(born, rng), "age": age_on(born, today)},
        "registered": {"date": api_date(registered, rng), "age": age_on(registered, today)},
        "phone": _fill(nat.phone, rng, born),
        "cell": _fill(nat.cell, rng, born),
    }
    national_id = _fill(nat.id[1], rng, born) if nat.id else None
    if not lean:
        user["id"] = {"name": nat.id[0], "value": national_id} if nat.id else {"name": "", "value": None}
        folder = "men" if male else "women"
        user["picture"] = {
            "large": f"https://randomuser.me/api/portraits/{folder}/{portrait}.jpg",
            "medium": f"https://randomuser.me/api/portraits/med/{folder}/{portrait}.jpg",
            "thumbnail": f"https://randomuser.me/api/portraits/thumb/{folder}/{portrait}.jpg",
        }
    user["nat"] = code
    return user


# --- broken records -----------------------------------------------------------------------------


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


@functools.cache
def _filler_block() -> str:
    words = "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor ".split()
    return " ".join(words[i % len(words)] + str(i) for i in range(10_000))


def filler(size: int) -> str:
    block = _filler_block()
    return (block * (size // len(block) + 1))[:size]


def break_user(reason: str, user: dict[str, Any], rng: random.Random, today: date) -> tuple[dict[str, Any] | bytes, str]:
    """Turn a valid user into a record the stream must dead-letter with `reason`; returns (payload, marker)."""
    marker = user["login"]["uuid"]
    if reason == "malformed_json":
        text = dumps(without_credentials(user))
        if rng.random() < 0.5:
            end = text.index(marker) + len(marker)
            return text[: rng.randint(end + 1, len(text) - 1)].encode(), marker
        return text.replace('"gender":', "gender:", 1).encode(), marker
    if reason == "not_an_object":
        if rng.random() < 0.5:
            return f"[{dumps(without_credentials(user))}]".encode(), marker
        return dumps(marker).encode(), marker
    if reason == "missing_id":
        # The producer drops login.username, so the marker goes where the synthetic extras go (see oversized).
        marker = user["notes"] = f"nouuid-{marker}"
        if rng.random() < 0.5:
            del user["login"]["uuid"]
        else:
            user["login"]["uuid"] = None
        return user, marker
    if reason == "missing_dob":
        variant = rng.randrange(3)
        if variant == 0:
            del user["dob"]
        elif variant == 1:
            user["dob"] = None
        else:
            del user["dob"]["date"]
        return user, marker
    if reason == "invalid_dob":
        user["dob"]["date"] = rng.choice([
            "not-a-date",
            "1990-13-45T10:00:00.000Z",
            api_date(today + timedelta(days=400), rng),
            api_date(years_before(today, 170), rng),
        ])
        return user, marker
    if reason == "wrong_type":
        variant = rng.randrange(4)
        if variant == 0:
            user["dob"]["age"] = "thirty-one"
        elif variant == 1:
            user["name"] = f"{user['name']['first']} {user['name']['last']}"
        elif variant == 2:
            user["location"] = f"{user['location']['street']['number']} {user['location']['street']['name']}"
        else:
            user["registered"] = 1262304000
        return user, marker
    if reason == "oversized":
        user["notes"] = filler(ONE_MIB + rng.randint(1, 64 * 1024))
        return user, marker
    raise ValueError(f"unknown dead-letter reason {reason!r}; expected one of {', '.join(REASONS)}")


# --- edge records -------------------------------------------------------------------------------

EDGE_NAMES = {
    "name_greek": ("Αλέξανδρος", "Παπαδόπουλος"),
    "name_cyrillic": ("Ярослава", "Гнатишин"),
    "name_arabic": ("محمد", "العلي"),
    "name_cjk": ("美咲", "佐藤"),
    "name_emoji": ("Zoë 🦄", "Smith 👩‍💻"),
}


@dataclass(frozen=True)
class EdgeRecord:
    name: str
    payload: dict[str, Any] | bytes
    expected: str  # STORED, FILTERED (with minimumAge 18) or a dead-letter reason code
    marker: str


def edge_records(today: date | None = None) -> list[EdgeRecord]:
    """The issue's edge records, each with the outcome the stream must produce on `today` (UTC)."""
    today = today or utc_today()
    records: list[EdgeRecord] = []

    def add(name: str, expected: str, change: Any) -> None:
        uid = str(uuidlib.uuid5(uuidlib.NAMESPACE_URL, f"https://userpipeline.io/edge/{name}"))
        user = make_user(random.Random(name), uid, 30, today)
        payload = change(user) or user
        records.append(EdgeRecord(name, payload, expected, uid))

    def born(day: date) -> Any:
        def change(user: dict[str, Any]) -> None:
            user["dob"] = {"date": f"{day.isoformat()}T12:00:00.000Z", "age": age_on(day, today)}
        return change

    def set_in(path: str, value: Any) -> Any:
        def change(user: dict[str, Any]) -> None:
            *parents, leaf = path.split(".")
            target = user
            for key in parents:
                target = target[key]
            target[leaf] = value
        return change

    add("age_18_today", STORED, born(years_before(today, 18)))
    add("age_18_tomorrow", FILTERED, born(years_before(today + timedelta(days=1), 18)))
    add("age_17", FILTERED, born(years_before(today, 17) - timedelta(days=100)))
    add("age_120", STORED, born(years_before(today, 120) - timedelta(days=100)))
    add("postcode_int", STORED, set_in("location.postcode", 12345))
    add("postcode_string_digits", STORED, set_in("location.postcode", "0172"))
    add("postcode_string", STORED, set_in("location.postcode", "SW1A 1AA"))
    add("id_value_null", STORED, set_in("id", {"name": "", "value": None}))
    for name, (first, last) in EDGE_NAMES.items():
        add(name, STORED, set_in("name", {"title": "Ms", "first": first, "last": last}))
    add("oversized_5mb", "oversized", set_in("notes", filler(5 * ONE_MIB)))
    add("json_array", "not_an_object", lambda user: f"[{dumps(without_credentials(user))}]".encode())
    return records
