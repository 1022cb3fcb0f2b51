"""Durations written the way people write them in YAML: `90s`, `15m`, `12h`, `30d`, `2w`."""

import re

DURATION_PATTERN = r"^[1-9][0-9]{0,5}(s|m|h|d|w)$"
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_RE = re.compile(DURATION_PATTERN)


def parse_duration(text: str) -> int:
    """Return the duration in seconds; raise ValueError with a readable message otherwise."""
    match = _RE.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a duration: write a number and a unit s, m, h, d or w, e.g. '30d'")
    return int(text[:-1]) * _UNIT_SECONDS[match.group(1)]
