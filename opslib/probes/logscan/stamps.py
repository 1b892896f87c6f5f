"""Timestamps at the start of a log line: which shapes are read, and how they are parsed.

ISO 8601 (`2026-11-23T14:02:11Z`, `2026-11-23 14:02:11,123`, optionally in brackets),
syslog (`Nov 23 14:02:11`, year assumed) and the profile's own strptime formats. The
regular expressions work on bytes and whole blocks, so the engine, not Python, walks the
lines. Structured logs carry their time elsewhere: `instant` reads a JSON or logfmt value
(ISO 8601 or seconds to nanoseconds since the epoch), `access_stamp` the bracketed
`03/Dec/2026:09:55:00 +0000` of web servers' access logs.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from opslib.clock import naive_utc, strptime_regex, utc_now

_ISO = rb"\[?\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2})?\]?"
_SYSLOG = rb"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [ \d]\d \d{2}:\d{2}:\d{2}"
_LEVELS = rb"DEBUG|INFO|WARNING|WARN|ERROR|CRITICAL|FATAL"
# the first letter of a level word names it (WARN is counted as WARNING)
LEVEL_NAMES = {
    b"D": "DEBUG", b"I": "INFO", b"W": "WARNING", b"E": "ERROR", b"C": "CRITICAL", b"F": "FATAL"
}  # fmt: skip
_ISO_STAMP = re.compile(_ISO)
_ZONE_OFFSET = re.compile(rb"[+-]\d{2}:?\d{2}\]?$")
AS_ZERO = bytes.maketrans(b"123456789", b"000000000")  # a stamp's shape: its digits as 0
_MONTH_NUMBERS = {month: number for number, month in enumerate(
    ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1
)}  # fmt: skip
_MONTHS = {month.encode(): number for month, number in _MONTH_NUMBERS.items()}


@functools.cache
def stamp_alternatives(formats: tuple[str, ...] = ()) -> bytes:
    """The regex (bytes, no group) of a stamp at a line's start: ISO 8601, syslog, then
    the profile's own formats."""
    return b"|".join([_ISO, _SYSLOG, *(strptime_regex(f).encode() for f in formats)])


@dataclass(frozen=True)
class LineShapes:
    """The regular expressions for dated lines, with the profile's own timestamp formats
    tried after ISO 8601 and syslog. `level` yields just each dated line's level word
    (the first one after its stamp); `entry` takes one line apart, matched at its start."""

    formats: tuple[str, ...]
    dated: re.Pattern[bytes]
    level: re.Pattern[bytes]
    entry: re.Pattern[bytes]


@functools.cache
def line_shapes(formats: tuple[str, ...] = ()) -> LineShapes:
    """The line regexes for these timestamp formats, compiled once per process."""
    stamps = stamp_alternatives(formats)
    return LineShapes(
        formats,
        re.compile(rb"^(?P<stamp>" + stamps + rb")", re.M),
        re.compile(rb"^(?:" + stamps + rb")[^\n]*?\b(" + _LEVELS + rb")\b", re.M),
        re.compile(
            rb"(?P<stamp>" + stamps + rb")[^\n]*?\b(?P<level>" + _LEVELS + rb")\b"
            rb"[ \t:\]-]*(?P<message>[^\n]*)"
        ),
    )


@functools.lru_cache(maxsize=64)
def after_newline(
    formats: tuple[str, ...], shape: bytes = b""
) -> tuple[re.Pattern[bytes], re.Pattern[bytes]]:
    """`dated` and `level` of `line_shapes(formats)`, matched after a newline instead of at
    `^`: the engine then jumps from newline to newline rather than trying `^` at every
    byte, twice as fast (a block's first line, with no newline before it, is matched with
    `line_shapes` itself). With `shape`, an ISO stamp with its digits written as 0, stamps
    of exactly that shape followed by a space are tried first, without the optional parts
    of the general ISO expression; it would match them the same way (a space ends each of
    its optional parts, and no level word starts at a space), so the matches are the same,
    found sooner. `level` yields the first letter of the level (`LEVEL_NAMES`): Python
    shares one-byte strings, where it would make a new level word for every line."""
    stamps = stamp_alternatives(formats)
    fast = re.escape(shape).replace(b"0", rb"\d")
    dated = (fast + rb"(?= )|" if shape else b"") + stamps
    level = (fast + rb" |" if shape else b"") + stamps
    letter = rb"(?=([" + b"".join(LEVEL_NAMES) + rb"]))"
    return (
        re.compile(rb"\n(?P<stamp>" + dated + rb")"),
        re.compile(rb"\n(?:" + level + rb")[^\n]*?\b" + letter + rb"(?:" + _LEVELS + rb")\b"),
    )


def block_regexes(shapes: LineShapes, block: bytes) -> tuple[re.Pattern[bytes], re.Pattern[bytes]]:
    """`after_newline` for this block: its first stamp, if ISO, gives the shape tried first."""
    first = shapes.dated.match(block) or after_newline(shapes.formats)[0].search(block)
    stamp = first["stamp"] if first else b""
    shape = stamp.translate(AS_ZERO) if _ISO_STAMP.fullmatch(stamp) else b""
    return after_newline(shapes.formats, shape)


def dated_stamps(shapes: LineShapes, block: bytes) -> list[bytes]:
    """The stamps of the block's dated lines, in order."""
    found = block_regexes(shapes, block)[0].findall(block)
    first = shapes.dated.match(block)
    if first:
        found.insert(0, first["stamp"])
    return found


def dated_levels(shapes: LineShapes, block: bytes) -> list[bytes]:
    """The first letter of the level of each of the block's dated lines that has one."""
    found = block_regexes(shapes, block)[1].findall(block)
    first = shapes.level.match(block)
    if first:
        found.append(first[1][:1])
    return found


def sortable(stamps: list[bytes]) -> bool:
    """Whether `stamps` sort as bytes in time order: ISO 8601, all of one shape (digit for
    digit) and one zone. One more shape, or two offsets (a change to summer time), and the
    earliest and latest stamps can no longer be found by comparing bytes."""
    first = stamps[0]
    if _ISO_STAMP.fullmatch(first) is None:
        return False
    joined = b"".join(stamps)
    if joined.translate(AS_ZERO) != first.translate(AS_ZERO) * len(stamps):
        return False
    zone = _ZONE_OFFSET.search(first)
    if zone is None:  # Z, or no zone at all: one zone
        return True
    size = len(first)  # all stamps have it: every byte at one position of a stamp, at once
    return all(
        joined[index::size] == first[index : index + 1] * len(stamps)
        for index in range(zone.start(), zone.end())
    )


def zone_free_iso(stamp: bytes) -> bool:
    """Whether `stamp` is ISO 8601 in UTC or with no zone: stamps of its shape then sort
    as bytes as their times do (an offset, which may change in one log, would not)."""
    return _ISO_STAMP.fullmatch(stamp) is not None and _ZONE_OFFSET.search(stamp) is None


def parse_stamp(raw: bytes, year: int, formats: tuple[str, ...] = ()) -> datetime | None:
    """A line's timestamp as naive UTC. A syslog stamp carries no year: it gets `year`,
    or the year before when that would put it in the future (December's lines read in
    January)."""
    raw_text = raw.decode("ascii", "replace")
    for format_ in formats:  # the profile's own formats see the stamp as written
        try:
            stamp = datetime.strptime(raw_text, format_)
        except ValueError:
            continue
        return naive_utc(stamp if "%Y" in format_ or "%y" in format_ else _with_year(stamp, year))
    text = raw_text.strip("[]")
    try:
        if text[0].isdigit() and text[4:5] == "-":
            return naive_utc(datetime.fromisoformat(text.replace(",", ".")))
        return _with_year(_syslog_stamp(text, year), year)
    except ValueError:
        return None


def _syslog_stamp(text: str, year: int) -> datetime:
    """`Nov 23 14:02:11` (or `Nov  3 ...`) in `year`, read field by field: strptime costs
    ten times as much, and line formats read one stamp a line. Anything else is left to
    strptime (a ValueError if it is no syslog stamp)."""
    month = _MONTH_NUMBERS.get(text[:3])
    if month is None or len(text) != 15 or text[3] != " " or text[9] != ":":
        return datetime.strptime(f"{year} {text}", "%Y %b %d %H:%M:%S")
    return datetime(year, month, int(text[4:6]), int(text[7:9]), int(text[10:12]), int(text[13:]))


def _with_year(stamp: datetime, year: int) -> datetime:
    stamp = stamp.replace(year=year)
    if stamp - utc_now() > timedelta(days=1):
        stamp = stamp.replace(year=year - 1)
    return stamp


_EPOCH = datetime(1970, 1, 1)


def instant(value: object) -> datetime | None:
    """A structured log's time as naive UTC: an ISO 8601 string, or a number (or string of
    digits) of seconds, milliseconds, microseconds or nanoseconds since the epoch, told
    apart by size (pino writes milliseconds, journald microseconds, zap nanoseconds)."""
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    if isinstance(value, str):
        text = value.strip().strip('[]"')
        try:
            if text[4:5] != "-":  # not a date: a number, perhaps
                value = float(text)
            else:
                return naive_utc(datetime.fromisoformat(text.replace(",", ".")))
        except ValueError:
            return None
    if not isinstance(value, int | float) or isinstance(value, bool) or value != value:
        return None
    magnitude = abs(value)
    seconds = (
        value / 1e9 if magnitude >= 1e17 else value / 1e6 if magnitude >= 1e14
        else value / 1e3 if magnitude >= 1e11 else value
    )  # fmt: skip
    try:
        return _EPOCH + timedelta(seconds=seconds)
    except OverflowError:
        return None


def access_stamp(raw: bytes, year: int = 0) -> datetime | None:
    """`03/Dec/2026:09:55:00 +0000` (an access log's stamp, brackets removed) as naive UTC,
    read field by field: strptime would cost ten times as much per line."""
    try:
        moment = datetime(
            int(raw[7:11]), _MONTHS[raw[3:6]], int(raw[0:2]),
            int(raw[12:14]), int(raw[15:17]), int(raw[18:20]),
        )  # fmt: skip
        if len(raw) >= 26:
            offset = timedelta(hours=int(raw[22:24]), minutes=int(raw[24:26]))
            moment = moment - offset if raw[21:22] == b"+" else moment + offset
    except (KeyError, ValueError):
        return None
    return moment
