"""The log formats opslib reads besides plain stamped lines, one line at a time.

`plain` (a stamp at the line's start, then a capital level word) is read block by block
by the scanner's regular expressions, the fast path. Every other format is read here, by
a parser per line that returns the line's entry, `(stamp, level, message, status)`, or
None for a line that is not an entry of the format (a traceback, a continuation), which
goes with the entry above it:

- `python`: logging's layouts, `2026-12-03 09:55:00,123 ERROR app: ...`, the cookbook's
  `... - app - ERROR - ...`, and `ERROR:root:...` with no stamp at all;
- `logback`: logback/log4j/Spring, `... ERROR [main] c.e.Foo - ...`, `[...][ERROR]...`,
  `... [main] ERROR ...`, also logback's default time-only stamp (no date: undated);
- `syslog`: RFC 3164 (`Dec  3 09:55:00 host app[123]: error: ...`, or an ISO stamp),
  the level being the PRI if the line has one, else a level word where the message starts,
  a `level=` key in it, or a capital level word anywhere in it (else no level);
- `syslog5424`: `<11>1 2026-12-03T09:55:00.123Z host app 123 ID47 - ...`, severity PRI % 8;
- `access`: nginx/Apache common and combined logs; each line a request, 5xx an error,
  4xx a warning, 429 rate limiting;
- `logfmt` and `json`: the time, level and message keys loggers use (`time`/`ts`,
  `level`/`severity`, `msg`/`message`; pino's numbers, journald's PRIORITY; in Docker's
  json-file, the app's own line under `log`, its level read as a syslog message's).

An entry of a format whose entries need not carry a level (syslog, JSON, logfmt) counts
as a line under `(none)` when it has none: it is a line of the log all the same, and the
error rate's denominator.

A stamp is kept raw (bytes, or a JSON value) until the window or an error needs its time:
`LineFormat.when` reads it.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from opslib.probes.logscan.levels import (
    ALIASES,
    ERROR,
    INFO,
    LEVEL_WORD,
    NO_LEVEL,
    SEVERITIES,
    UPPER_LEVEL_WORD,
    WARNING,
    level_named,
    level_numbered,
)
from opslib.probes.logscan.stamps import access_stamp, instant, parse_stamp, stamp_alternatives

# (raw stamp or None, level name, message, HTTP status or None)
Entry = tuple[Any, str, bytes | str, int | None]

PLAIN = "plain"
FORMAT_NAMES = ("plain", "logfmt", "json", "python", "logback", "syslog", "syslog5424", "access")


@dataclass(frozen=True)
class LineFormat:
    """How one format's lines are read: `parse` takes a line apart (None: not an entry),
    `when` turns its raw stamp into naive UTC (None: no time), `requests` says each entry
    is a request (access logs)."""

    name: str
    parse: Callable[[bytes], Entry | None]
    when: Callable[[Any, int], datetime | None]
    requests: bool = False


_LEVEL_END = rb"\]?(?![\w.\-/])"  # a level word ends a field: `ERROR`, `[ERROR]`, `error:`
_REST = rb"[ \t:\]|-]*(?P<message>.*)"
_TIME_ONLY = rb"\d{2}:\d{2}:\d{2}(?:[.,]\d{1,9})?"


def _text_when(raw: Any, year: int, formats: tuple[str, ...] = ()) -> datetime | None:
    return parse_stamp(raw, year, formats)


def _python(formats: tuple[str, ...]) -> Callable[[bytes], Entry | None]:
    stamped = re.compile(
        rb"(?P<stamp>" + stamp_alternatives(formats) + rb")[ \t]*(?:[-|:][ \t]*)?"
        rb"(?:[\w.]+[ \t]+-[ \t]+)?\[?(?P<level>" + LEVEL_WORD + rb")" + _LEVEL_END + _REST
    ).match
    basic = re.compile(rb"(?P<level>" + LEVEL_WORD + rb"):(?P<message>[^:\s]*:.*)").match

    def parse(line: bytes) -> Entry | None:
        found = stamped(line)
        if found is not None:
            return found["stamp"], ALIASES[found["level"].lower().decode()], found["message"], None
        found = basic(line)
        if found is None:
            return None
        return None, ALIASES[found["level"].lower().decode()], found["message"], None

    return parse


def _logback(formats: tuple[str, ...]) -> Callable[[bytes], Entry | None]:
    match = re.compile(
        rb"(?P<stamp>" + stamp_alternatives(formats) + b"|" + _TIME_ONLY + rb")"
        rb"(?:[ \t]*(?:\[[^\]\n]*\]|\d+|---))*?[ \t]*\[?(?P<level>"
        + LEVEL_WORD
        + rb")"
        + _LEVEL_END
        + _REST
    ).match

    def parse(line: bytes) -> Entry | None:
        found = match(line)
        if found is None:
            return None
        return found["stamp"], ALIASES[found["level"].lower().decode()], found["message"], None

    return parse


_AT_START = re.compile(
    rb"(?:\[[^\]]*\][ \t]*)?[\[<(]?(" + LEVEL_WORD + rb")[\]>)]?(?![\w.\-/])"
).match
_KEYED = re.compile(
    rb"(?i:\blevel|\blvl|\bseverity)\"?[=:][ \t]*\"?(" + LEVEL_WORD + rb")\b"
).search
_CAPITAL = re.compile(rb"\b(" + UPPER_LEVEL_WORD + rb")\b").search


def message_level(message: bytes) -> tuple[str, bytes]:
    """The level a syslog message says, in any case, where a level stands: at its start
    (`error: ...`, `<warn> ...`, the level then left out of the message), as a `level=`
    key, or as a capital word anywhere; and the message."""
    found = _AT_START(message)
    if found is not None:
        return ALIASES[found[1].lower().decode()], message[found.end() :].lstrip(b" \t:-")
    found = _KEYED(message) or _CAPITAL(message)
    return NO_LEVEL if found is None else ALIASES[found[1].lower().decode()], message


def _syslog(formats: tuple[str, ...]) -> Callable[[bytes], Entry | None]:
    match = re.compile(
        rb"(?:<(?P<pri>\d{1,3})>)?(?P<stamp>" + stamp_alternatives(formats) + rb")[ \t]+"
        rb"(?P<host>[^\s\[\]]+)[ \t]+(?P<tag>[^\s:\[\]]+)(?:\[[^\]\s]*\])?:[ \t]*(?P<message>.*)"
    ).match

    def parse(line: bytes) -> Entry | None:
        found = match(line)
        if found is None or found["host"].lower().decode("ascii", "replace") in ALIASES:
            return None  # `2026-... INFO app: ...` is a stamped line with a level, not syslog
        pri, message = found["pri"], found["message"]
        if pri:
            level = SEVERITIES[int(pri) % 8]
        else:
            level, message = message_level(message)
        return found["stamp"], level, found["tag"] + b": " + message, None  # `app: ...`

    return parse


_SYSLOG5424 = re.compile(
    rb"<(?P<pri>\d{1,3})>\d{1,2} (?P<stamp>\S+) \S+ (?P<app>\S+) \S+ \S+ "
    rb"(?:-|(?:\[(?:[^\]\"\\]|\\.|\"(?:[^\"\\]|\\.)*\")*\])+)(?: (?P<message>.*))?"
).match


def _syslog5424(line: bytes) -> Entry | None:
    found = _SYSLOG5424(line)
    if found is None:
        return None
    stamp, message = found["stamp"], found["message"] or b""
    return (
        None if stamp == b"-" else stamp,
        SEVERITIES[int(found["pri"]) % 8],
        found["app"] + b": " + message.removeprefix(b"\xef\xbb\xbf"),  # BOM: UTF-8 follows
        None,
    )


_ACCESS = re.compile(
    rb"(?:\S+ )?\S+ \S+ (?:\S+|\"[^\"]*\") "
    rb"\[(?P<stamp>\d{2}/[A-Za-z]{3}/\d{4}:\d{2}:\d{2}:\d{2}(?: [+-]\d{4})?)\] "
    rb"\"(?P<request>(?:[^\"\\]|\\.)*)\" (?P<status>\d{3})\b"
).match


def _access(line: bytes) -> Entry | None:
    found = _ACCESS(line)
    if found is None:
        return None
    status = int(found["status"])
    level = ERROR if status >= 500 else WARNING if status >= 400 else INFO
    return found["stamp"], level, found["request"], status


_PAIR = re.compile(rb"(?:^|(?<=[ \t]))([\w.@/-]+)=(\"[^\"\\]*(?:\\.[^\"\\]*)*\"|[^ \t\"]*)")
_LEVEL_KEYS = ("level", "lvl", "severity", "loglevel", "log.level", "levelname", "@l")
_TIME_KEYS = ("time", "ts", "timestamp", "@timestamp", "t", "@t", "datetime")
_MESSAGE_KEYS = ("msg", "message", "@m", "@mt", "MESSAGE", "error", "err", "event")


def _unquoted(value: bytes) -> bytes:
    if value[:1] == b'"':
        return value[1:-1].replace(b'\\"', b'"').replace(b"\\\\", b"\\")
    return value


def _first(found: dict, keys: tuple) -> Any:
    """The value of the first of `keys` that `found` has (None: none)."""
    for key in keys:
        value = found.get(key)
        if value is not None:
            return value
    return None


_BYTE_KEYS = tuple(tuple(key.encode() for key in keys) for keys in (_LEVEL_KEYS, _TIME_KEYS))
_LEVEL_BYTES, _TIME_BYTES = _BYTE_KEYS
_MESSAGE_BYTES = tuple(key.encode() for key in _MESSAGE_KEYS)


def _logfmt(formats: tuple[str, ...]) -> Callable[[bytes], Entry | None]:
    leading = re.compile(rb"(?P<stamp>" + stamp_alternatives(formats) + rb")[ \t]").match

    def parse(line: bytes) -> Entry | None:
        pairs = dict(_PAIR.findall(line))
        if not pairs:
            return None
        level, stamp = _first(pairs, _LEVEL_BYTES), _first(pairs, _TIME_BYTES)
        if level is None and stamp is None:
            return None
        message = _first(pairs, _MESSAGE_BYTES)
        if stamp is None and (first := leading(line)) is not None:
            stamp = first["stamp"]  # `2026-... level=error msg=...`: a stamp, then pairs
        return (
            None if stamp is None else _unquoted(stamp),
            NO_LEVEL if level is None else level_named(_unquoted(level)),
            line if message is None else _unquoted(message),
            None,
        )

    return parse


def _json_level(record: dict[str, Any]) -> str:
    value = _first(record, _LEVEL_KEYS)
    if isinstance(value, str):
        return level_named(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return level_numbered(value)
    if isinstance(record.get("log"), dict) and "level" in record["log"]:  # ECS, nested
        return level_named(str(record["log"]["level"]))
    priority = str(record.get("PRIORITY", ""))  # journalctl -o json
    if priority.isdigit():
        return SEVERITIES[int(priority) % 8]
    return INFO if "@t" in record else NO_LEVEL  # Serilog leaves Information out


_JSON_OBJECT = json.JSONDecoder().raw_decode
_LEADING_STAMP = re.compile(rb"^(?:" + stamp_alternatives() + rb")[ \t]*").sub


def _json(line: bytes) -> Entry | None:
    if line[:1] != b"{":
        line = line.strip()
        if line[:1] != b"{":
            return None
    try:  # raw_decode: json.loads would look for the encoding, and for text after it
        record = _JSON_OBJECT(line.decode("utf-8", "replace"))[0]
    except ValueError:
        return None
    if not isinstance(record, dict):
        return None
    stamp = _first(record, _TIME_KEYS)
    if stamp is None:
        stamp = record.get("__REALTIME_TIMESTAMP")  # journald: microseconds
    level = _json_level(record)
    inner = record.get("log")
    if level == NO_LEVEL and isinstance(inner, str):  # Docker's json-file: the app's line
        level, text = message_level(_LEADING_STAMP(b"", inner.strip().encode()))
        return stamp, level, text, None
    if stamp is None and level == NO_LEVEL:
        return None
    message = _first(record, _MESSAGE_KEYS)
    if isinstance(message, dict):  # pino's `err`: {type, message, stack}
        message = message.get("message")
    text = message if isinstance(message, str) else json.dumps(message) if message else ""
    return stamp, level, text, None


def _instant(raw: Any, year: int) -> datetime | None:
    return instant(raw)


@functools.cache
def line_format(name: str, formats: tuple[str, ...] = ()) -> LineFormat:
    """The reader of format `name` (not `plain`, which the scanner reads by blocks) with
    the profile's timestamp formats tried after ISO 8601 and syslog."""
    text_when = functools.partial(_text_when, formats=formats)
    if name == "python":
        return LineFormat(name, _python(formats), text_when)
    if name == "logback":
        return LineFormat(name, _logback(formats), text_when)
    if name == "syslog":
        return LineFormat(name, _syslog(formats), text_when)
    if name == "syslog5424":
        return LineFormat(name, _syslog5424, _instant)
    if name == "access":
        return LineFormat(name, _access, access_stamp, requests=True)
    if name == "logfmt":
        return LineFormat(name, _logfmt(formats), _logfmt_when(formats))
    if name == "json":
        return LineFormat(name, _json, _instant)
    raise ValueError(f"unknown log format {name!r}; known: {', '.join(FORMAT_NAMES)}")


def _logfmt_when(formats: tuple[str, ...]) -> Callable[[Any, int], datetime | None]:
    """A logfmt time: ISO 8601 or epoch in a key, or a stamp of the profile's at the start."""

    def when(raw: Any, year: int) -> datetime | None:
        found = instant(raw)
        return found if found is not None else parse_stamp(raw, year, formats)

    return when
