"""Log triage in one streaming pass: levels, error patterns and rate-limit signals.

What `zcat | grep ERROR | awk | sort | uniq -c | sort -rn` answers at 3 AM, in one pass
that keeps memory flat whatever the size of the logs. The files are read in blocks of
bytes and the regular expressions run over whole blocks (in C), so Python only handles
the lines that matter: error lines, and lines at the edge of the time window. Whole
blocks older than the window are skipped after looking at their last line.

Timestamps are read at the start of a line: ISO 8601 (`2026-11-23T14:02:11Z`,
`2026-11-23 14:02:11,123`, optionally in brackets) and syslog (`Nov 23 14:02:11`, year
assumed). Lines without one (tracebacks, continuations) belong to the entry above and are
not counted on their own.

For checks that run every few minutes, `Offsets` remembers how far each file was read,
by a fingerprint of its first bytes rather than by name: a file renamed (and even
compressed) by rotation is recognised and continued, a truncated one is read again from
the start, so no line is lost or counted twice.
"""

from __future__ import annotations

import concurrent.futures
import functools
import gzip
import hashlib
import json
import multiprocessing
import os
import re
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import BinaryIO

BLOCK = 1 << 20
FINGERPRINT_BYTES = 1024
EXAMPLE_CHARS = 300

_ISO = rb"\[?\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2})?\]?"
_SYSLOG = rb"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [ \d]\d \d{2}:\d{2}:\d{2}"
_LEVELS = rb"DEBUG|INFO|WARNING|WARN|ERROR|CRITICAL|FATAL"
# stamps that sort as bytes in time order (given one length and one zone)
_ISO_START = re.compile(rb"\[?\d{4}-\d{2}-\d{2}[T ]")
# strptime directives a profile's timestamp format may use, as regular expressions
_DIRECTIVES = {
    "%Y": r"\d{4}", "%y": r"\d{2}", "%m": r"\d{1,2}", "%d": r"\d{1,2}", "%j": r"\d{3}",
    "%H": r"\d{1,2}", "%I": r"\d{1,2}", "%M": r"\d{2}", "%S": r"\d{2}", "%f": r"\d{1,6}",
    "%p": r"(?:AM|PM)", "%b": r"[A-Za-z]{3}", "%a": r"[A-Za-z]{3}", "%z": r"(?:Z|[+-]\d{2}:?\d{2})",
    "%%": "%",
}  # fmt: skip


def format_regex(format_: str) -> str:
    """The regular expression matching timestamps written with strptime `format_`;
    a directive outside `_DIRECTIVES` is a ValueError naming it."""
    parts = re.split(r"(%.)", format_)
    pieces = []
    for part in parts:
        if part.startswith("%"):
            if part not in _DIRECTIVES:
                raise ValueError(f"timestamp format {format_!r}: {part} is not supported")
            pieces.append(_DIRECTIVES[part])
        else:
            pieces.append(re.escape(part))
    return "".join(pieces)


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
    stamps = b"|".join([_ISO, _SYSLOG, *(format_regex(f).encode() for f in formats)])
    return LineShapes(
        formats,
        re.compile(rb"^(?P<stamp>" + stamps + rb")", re.M),
        re.compile(rb"^(?:" + stamps + rb")[^\n]*?\b(" + _LEVELS + rb")\b", re.M),
        re.compile(
            rb"(?P<stamp>" + stamps + rb")[^\n]*?\b(?P<level>" + _LEVELS + rb")\b"
            rb"[\s:\]-]*(?P<message>[^\n]*)"
        ),
    )


# Words whose lines need a closer look, found by plain substring search (C speed): an
# error level, and rate limiting (searched in a lower-cased copy of the block).
ERROR_WORDS = (b"ERROR", b"CRITICAL", b"FATAL")
ERROR_LEVELS = {b"ERROR", b"CRITICAL", b"FATAL"}
RATE_LIMIT_WORDS = (b"limit", b"429")
_RATE_PREFIXES = (b"rate ", b"rate-", b"rate_", b"rate")


def _word_byte(byte: bytes) -> bool:
    return byte.isalnum() or byte == b"_"


def _qualifies(data: bytes, position: int, word: bytes) -> bool:
    """A number must be a word of its own (`429`, not `14290` or `-429a-` in a UUID), as
    grep's `\b429\b` reads it; `limit` must follow `rate`."""
    end = position + len(word)
    if word.isdigit():
        return not _word_byte(data[position - 1 : position]) and not _word_byte(data[end : end + 1])
    if word == b"limit":
        return any(data[position - len(p) : position] == p for p in _RATE_PREFIXES)
    return True


def line_starts(data: bytes, words: tuple[bytes, ...]) -> list[int]:
    """The start offsets of the lines of `data` containing any of `words`, in order,
    each once (one substring search per word, then a check around each hit)."""
    starts = set()
    for word in words:
        position = data.find(word)
        while position != -1:
            if _qualifies(data, position, word):
                starts.add(data.rfind(b"\n", 0, position) + 1)
            position = data.find(word, position + len(word))
    return sorted(starts)


_DIGITS = b"0123456789"
_CACHE_LIMIT = 20_000  # messages whose ids have no digits (names, UUIDs) fill it

# the variable parts of an error message, most specific first
_PLACEHOLDERS = [
    (re.compile(r"\b[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}\b"), "<uuid>"),
    (re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?\b"), "<ip>"),
    (re.compile(r"(?<![\w.])(?:/[\w.@~+-]+){2,}/?"), "<path>"),
    (
        re.compile(
            r"\b0x[0-9a-fA-F]+\b|\b(?=[0-9a-fA-F]*\d)(?=[0-9a-fA-F]*[a-fA-F])[0-9a-fA-F]{8,}\b"
        ),
        "<hex>",
    ),
    (re.compile(r"\b\d+(?:\.\d+)?\b"), "<n>"),
]


def normalize(message: str) -> str:
    """An error message with ids, numbers, addresses and paths replaced by placeholders,
    so the same failure on different items counts as one pattern."""
    for pattern, placeholder in _PLACEHOLDERS:
        message = pattern.sub(placeholder, message)
    return " ".join(message.split())[:EXAMPLE_CHARS]


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
        return _utc(stamp if "%Y" in format_ or "%y" in format_ else _with_year(stamp, year))
    text = raw_text.strip("[]")
    try:
        if text[0].isdigit() and text[4:5] == "-":
            return _utc(datetime.fromisoformat(text.replace(",", ".")))
        return _with_year(datetime.strptime(f"{year} {text}", "%Y %b %d %H:%M:%S"), year)
    except ValueError:
        return None


def _with_year(stamp: datetime, year: int) -> datetime:
    stamp = stamp.replace(year=year)
    if stamp - datetime.now(UTC).replace(tzinfo=None) > timedelta(days=1):
        stamp = stamp.replace(year=year - 1)
    return stamp


def _utc(stamp: datetime) -> datetime:
    return stamp.astimezone(UTC).replace(tzinfo=None) if stamp.tzinfo else stamp


@dataclass
class Pattern:
    """One normalized error message: how often, when first and last, one real example."""

    count: int
    first: datetime
    last: datetime
    example: str


@dataclass
class Triage:
    """What one pass over the logs found, for the lines at or after `since`."""

    since: datetime | None
    files: int = 0
    bytes_read: int = 0
    lines: int = 0
    levels: Counter[str] = field(default_factory=Counter)
    requests: int = 0
    rate_limited: int = 0
    patterns: dict[str, Pattern] = field(default_factory=dict)
    errors_per_hour: Counter[datetime] = field(default_factory=Counter)
    unreadable: list[str] = field(default_factory=list)  # files that could not be read, and why

    @property
    def errors(self) -> int:
        """Lines at ERROR, CRITICAL or FATAL."""
        return sum(self.levels[level] for level in ("ERROR", "CRITICAL", "FATAL"))

    def top_patterns(self, limit: int = 10) -> list[tuple[str, Pattern]]:
        """The commonest patterns first."""
        return sorted(self.patterns.items(), key=lambda item: -item[1].count)[:limit]


def _open(path: Path) -> BinaryIO:
    return gzip.open(path, "rb") if path.suffix == ".gz" else path.open("rb")


def _blocks(stream: BinaryIO, tail: list[bytes]) -> Iterator[bytes]:
    """Whole lines, about a megabyte at a time (a line never straddles two blocks); an
    unfinished last line is left in `tail`, since its writer may still be writing it."""
    carry = b""
    while chunk := stream.read(BLOCK):
        data = carry + chunk
        cut = data.rfind(b"\n") + 1
        carry = data[cut:]
        if cut:
            yield data[:cut]
    tail.append(carry)


class _Window:
    """Which of a block's lines fall in the window. ISO stamps of one shape (same length,
    same zone) sort as bytes, so the block's earliest and latest stamp are found in C and
    only those two are parsed: a block wholly before or inside the window costs two
    parses. A block that straddles the window's start, or mixes stamp shapes (syslog,
    several zones), is filtered line by line."""

    def __init__(self, since: datetime | None, year: int, shapes: LineShapes) -> None:
        self.since = since
        self.year = year
        self.shapes = shapes

    def _inside(self, raw: bytes) -> bool | None:
        stamp = parse_stamp(raw, self.year, self.shapes.formats)
        return None if stamp is None else stamp >= self.since

    def cut(self, block: bytes) -> bytes:
        if self.since is None:
            return block
        stamps = self.shapes.dated.findall(block)
        if not stamps:
            return b""
        earliest, latest = min(stamps), max(stamps)
        one_shape = (
            _ISO_START.match(earliest) is not None
            and _ISO_START.match(latest) is not None
            and len(set(map(len, stamps))) == 1
            and stamps[0][-6:].lstrip(b"0123456789:,.") == stamps[-1][-6:].lstrip(b"0123456789:,.")
        )
        if one_shape:
            if self._inside(latest) is False:
                return b""
            if self._inside(earliest):
                return block
        return self._filter(block)

    def _filter(self, block: bytes) -> bytes:
        """The block's dated lines in the window, each with its undated continuation lines."""
        kept = []
        keep = False
        for line in block.splitlines(keepends=True):
            dated = self.shapes.dated.match(line)
            if dated:
                keep = bool(self._inside(dated["stamp"]))
            if keep:
                kept.append(line)
        return b"".join(kept)


class Scanner:
    """Accumulates a `Triage` over blocks of log text."""

    def __init__(
        self, since: datetime | None, requests: str | None = None, formats: tuple[str, ...] = ()
    ) -> None:
        if since is not None and since.tzinfo is not None:  # stamps are compared as naive UTC
            since = since.astimezone(UTC).replace(tzinfo=None)
        self._triage = Triage(since)
        self.year = datetime.now(UTC).year
        self.shapes = line_shapes(tuple(formats))
        self.window = _Window(since, self.year, self.shapes)
        self.requests = re.compile(requests.encode(), re.M) if requests else None
        self._keys: dict[bytes, str] = {}  # message without digits -> normalized pattern
        self._seen: dict[str, list] = {}  # pattern -> [count, first stamp, last stamp, line]
        self._hours: dict[bytes, list] = {}  # stamp up to its hour -> [errors, a full stamp]

    def feed(self, block: bytes) -> None:
        triage = self._triage
        triage.bytes_read += len(block)
        data = self.window.cut(block)
        if not data:
            return
        for level, count in Counter(self.shapes.level.findall(data)).items():
            triage.levels["WARNING" if level == b"WARN" else level.decode()] += count
            triage.lines += count
        if self.requests is not None:
            triage.requests += len(self.requests.findall(data))
        triage.rate_limited += len(line_starts(data.lower(), RATE_LIMIT_WORDS))
        for start in line_starts(data, ERROR_WORDS):
            entry = self.shapes.entry.match(data, start)
            if entry is not None and entry["level"] in ERROR_LEVELS:  # its level, not a word
                self._error(entry)

    def _error(self, match: re.Match[bytes]) -> None:
        """Count one error line under its pattern. Normalizing is cached by the message
        without its digits (the same failure on another item hits the cache), and stamps
        stay bytes until the triage is read (files are read oldest first, so the first
        stamp seen is the first): per error line this is a few dict lookups."""
        message = match["message"]
        shape = message.translate(None, _DIGITS)
        key = self._keys.get(shape)
        if key is None:
            if len(self._keys) > _CACHE_LIMIT:  # ids without digits: keep memory flat
                self._keys.clear()
            key = self._keys[shape] = normalize(message.decode("utf-8", "replace"))
        stamp = match["stamp"]
        seen = self._seen.get(key)
        if seen is None:
            self._seen[key] = [1, stamp, stamp, match[0]]
        else:
            seen[0] += 1
            seen[2] = stamp
        hour = self._hours.get(stamp.split(b":", 1)[0])
        if hour is None:
            self._hours[stamp.split(b":", 1)[0]] = [1, stamp]
        else:
            hour[0] += 1

    def absorb(self, later: Scanner) -> None:
        """Add what another scanner found in later files (files are read oldest first)."""
        mine, theirs = self._triage, later._triage
        mine.files += theirs.files
        mine.bytes_read += theirs.bytes_read
        mine.lines += theirs.lines
        mine.levels.update(theirs.levels)
        mine.requests += theirs.requests
        mine.rate_limited += theirs.rate_limited
        mine.unreadable += theirs.unreadable
        for key, (count, first, last, line) in later._seen.items():
            seen = self._seen.setdefault(key, [0, first, last, line])
            seen[0] += count
            seen[2] = last
        for prefix, (count, stamp) in later._hours.items():
            self._hours.setdefault(prefix, [0, stamp])[0] += count

    @property
    def triage(self) -> Triage:
        """The triage so far, its error patterns and hours turned into datetimes."""
        found = self._triage

        def when(stamp: bytes) -> datetime:
            return parse_stamp(stamp, self.year, self.shapes.formats) or datetime.min

        found.patterns = {
            key: Pattern(
                count, when(first), when(last), line.decode("utf-8", "replace")[:EXAMPLE_CHARS]
            )
            for key, (count, first, last, line) in self._seen.items()
        }
        found.errors_per_hour = Counter()
        for count, stamp in self._hours.values():
            found.errors_per_hour[when(stamp).replace(minute=0, second=0, microsecond=0)] += count
        return found

    def read(self, path: Path, start: int = 0, *, finished_lines_only: bool = False) -> int:
        """Feed the file from byte `start` (of its uncompressed text); returns the offset
        after the last line fed. With `finished_lines_only` an unterminated last line is
        left for the next scan instead of being counted now."""
        self._triage.files += 1
        tail: list[bytes] = []
        position = start
        try:
            with _open(path) as stream:
                if start:
                    stream.seek(start)
                for block in _blocks(stream, tail):
                    self.feed(block)
                    position += len(block)
        except (OSError, EOFError, zlib.error) as exc:  # a cut-off archive, a vanished file
            self._triage.unreadable.append(f"{path.name}: {exc}")
            return position
        if tail[0] and not finished_lines_only:
            self.feed(tail[0] + b"\n")
            position += len(tail[0])
        return position


def fingerprint(path: Path, length: int = FINGERPRINT_BYTES) -> tuple[str, int]:
    """A hash of the file's first bytes (uncompressed) and how many there were."""
    with _open(path) as stream:
        head = stream.read(length)
    return hashlib.sha1(head).hexdigest(), len(head)


class Offsets:
    """How far each log file was read last time, kept as JSON in `path`.

    A file is recognised by the hash of its first bytes, so rotation by rename or by
    compression keeps its place. Lines appended to a file after the last scan are the
    only ones read; a file shorter than where we stopped was truncated and starts over.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.entries: list[dict] = json.loads(path.read_text())
        except (OSError, ValueError):
            self.entries = []

    def start_of(self, file: Path) -> int:
        """Where to resume `file`: past what an earlier scan already read, else 0."""
        # the longest fingerprint first: a short head (a young file) matches more files
        for entry in sorted(self.entries, key=lambda entry: -entry["head_length"]):
            if entry.get("claimed") or not entry["head_length"]:
                continue
            digest, length = fingerprint(file, entry["head_length"])
            if length == entry["head_length"] and digest == entry["head"]:
                entry["claimed"] = True
                size = _uncompressed_size(file)
                return entry["offset"] if size is None or size >= entry["offset"] else 0
        return 0

    def scan(self, files: list[Path], scanner: Scanner) -> None:
        """Read what is new in every file and remember where each one ended."""
        seen = []
        for file in files:
            start = self.start_of(file)
            end = scanner.read(file, start, finished_lines_only=True)
            digest, length = fingerprint(file)
            seen.append({"head": digest, "head_length": length, "offset": end, "file": str(file)})
        self.entries = seen
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(self.path.name + ".tmp")
        temporary.write_text(json.dumps(seen, indent=1))
        os.replace(temporary, self.path)


def _uncompressed_size(file: Path) -> int | None:
    """The size of a plain file; None for a compressed one (unknown without reading it)."""
    return None if file.suffix == ".gz" else file.stat().st_size


def dated_matches(
    files: list[Path], pattern: str, formats: tuple[str, ...] = ()
) -> Iterator[tuple[datetime, dict[str, str]]]:
    """(time, named groups) of every dated line in `files` where `pattern` matches after
    the timestamp, streamed block by block like the triage."""
    shapes = line_shapes(formats)
    wanted = re.compile(rb"^" + shapes.dated.pattern[1:] + rb"[^\n]*?" + pattern.encode(), re.M)
    year = datetime.now(UTC).year
    for path in files:
        tail: list[bytes] = []
        with _open(path) as stream:
            for block in _blocks(stream, tail):
                for match in wanted.finditer(block):
                    stamp = parse_stamp(match["stamp"], year, formats)
                    if stamp is not None:
                        groups = {
                            k: v.decode("utf-8", "replace")
                            for k, v in match.groupdict().items()
                            if v is not None and k != "stamp"
                        }
                        yield stamp, groups


PARALLEL_FROM_BYTES = 32 * 2**20


def _scan_file(
    path: Path, since: datetime | None, requests: str | None, formats: tuple[str, ...]
) -> Scanner:
    scanner = Scanner(since, requests, formats)
    scanner.read(path)
    scanner._keys.clear()  # a cache, not a result: it need not travel back
    return scanner


def scan(
    files: list[Path],
    since: datetime | None,
    requests: str | None = None,
    formats: tuple[str, ...] = (),
) -> Triage:
    """Triage `files` (oldest first). Large sets are read one file per worker process on
    every core, and the results added up in file order, so it is the same triage."""
    workers = min(len(files), len(os.sched_getaffinity(0)))
    if workers < 2 or sum(path.stat().st_size for path in files) < PARALLEL_FROM_BYTES:
        scanner = Scanner(since, requests, formats)
        for path in files:
            scanner.read(path)
        return scanner.triage
    # spawn, not fork: the caller may be a Jupyter kernel with threads of its own
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context) as pool:
        one_file = functools.partial(_scan_file, since=since, requests=requests, formats=formats)
        parts = list(pool.map(one_file, files))
    whole = parts[0]
    for part in parts[1:]:
        whole.absorb(part)
    return whole.triage
