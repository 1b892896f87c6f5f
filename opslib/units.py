"""Quantities with units, read the same way wherever a person writes one.

A threshold end, a profile's timeout, a retention period, `opslib run --timeout`,
`opslib history --since` and `opslib ack --until` all go through `parse_quantity` and
`parse_duration`, so `'5 min'`, `300`, `'2 days'` and `'1.5 h'` mean the same everywhere.
The profile schema's types (`Seconds`, `Days`, `Bytes`, `Regex` in `opslib.profiles.fields`)
read a YAML value with these parsers, `duration_argument` a command-line one; both say
what was wrong in one line. No pydantic here: the CLI imports this module to start.
"""

from __future__ import annotations

import argparse
import math
import re
from typing import Any

# Sizes need their B (`1 GB`, `512 MiB`): a bare `30m` is thirty minutes, not megabytes.
_SIZE_UNIT = re.compile(r"^\s*[\d.]+\s*(b|kb|kib|mb|mib|gb|gib|tb|tib|pb|pib)\s*$", re.I)
DAY_S = 86400.0


def parse_quantity(text: str) -> float:
    """A number from a threshold end: `'5 min'` → 300 (seconds), `'1 GB'` → 1e9 (bytes),
    `'95%'` → 95, `'2.5'` → 2.5. `~` is minus infinity, as in Nagios ranges."""
    spec = text.strip()
    if spec == "~":
        return -math.inf
    if spec.endswith("%"):
        return float(spec[:-1])
    try:
        return float(spec)
    except ValueError:
        pass
    import humanfriendly  # ~7 ms to import, and a bare number never needs it

    if _SIZE_UNIT.match(spec):
        return float(humanfriendly.parse_size(spec, binary=spec.lower().rstrip().endswith("ib")))
    try:
        return float(humanfriendly.parse_timespan(spec))
    except humanfriendly.InvalidTimespan as exc:
        raise ValueError(f"cannot read {text!r} as a number, duration, size or percentage") from exc


def parse_duration(value: Any, *, allow_zero: bool = False) -> float:
    """Seconds from `300`, `'5 min'`, `'2 days'`: finite, above zero (or zero when
    `allow_zero`); a size or a percentage is no duration."""
    text = str(value).strip()
    kind = "duration" if allow_zero else "positive duration"
    problem = f"{value!r} is not a {kind} such as '5 min', '2 days' or 300 (seconds)"
    if text.endswith("%") or _SIZE_UNIT.match(text):
        raise ValueError(problem)
    try:
        seconds = parse_quantity(text)
    except ValueError:
        raise ValueError(problem) from None
    if not (seconds >= 0 if allow_zero else seconds > 0) or seconds == math.inf:
        raise ValueError(problem)
    return seconds


def parse_size(value: Any) -> float:
    """Bytes from `'100 KB'`, `'1 GiB'` or a plain number: finite, zero or more."""
    text = str(value).strip()
    try:
        size = parse_quantity(text)
    except ValueError:
        size = math.nan
    if text.endswith("%") or not 0 <= size < math.inf:
        raise ValueError(f"{value!r} must be a size such as '100 KB'")
    return size


def regex(value: str) -> str:
    """A regular expression, compiled once to prove it is one."""
    try:
        re.compile(value)
    except re.error as exc:
        raise ValueError(f"{value!r} is not a valid regular expression ({exc})") from None
    return value


def duration_argument(text: str) -> float:
    """An argparse type: seconds from a duration on the command line."""
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
