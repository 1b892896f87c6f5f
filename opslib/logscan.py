"""Log triage in one streaming pass: levels, error patterns and rate-limit signals.

What `zcat | grep ERROR | awk | sort | uniq -c | sort -rn` answers at 3 AM, in one pass
that keeps memory flat whatever the size of the logs. The files are read in blocks of
bytes and the regular expressions run over whole blocks (in C), so Python only handles
the lines that matter: error lines, and lines at the edge of the time window. A block
whose stamps all fall before the window is dropped and one wholly inside it is kept,
each after parsing two stamps; only a block across the window's start is filtered line
by line. `scan()` spreads a large set of files over the cores, in parts of files.

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

import contextlib
import functools
import gzip
import hashlib
import json
import os
import re
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import BinaryIO

from opslib.clock import utc_now
from opslib.units import strptime_regex

BLOCK = 1 << 20
GZIP_INPUT_BYTES = 1 << 16  # inflates to about 256 KiB of text
FINGERPRINT_BYTES = 1024
EXAMPLE_CHARS = 300

_ISO = rb"\[?\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2})?\]?"
_SYSLOG = rb"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [ \d]\d \d{2}:\d{2}:\d{2}"
_LEVELS = rb"DEBUG|INFO|WARNING|WARN|ERROR|CRITICAL|FATAL"
# the first letter of a level word names it (WARN is counted as WARNING)
_LEVEL_NAMES = {
    b"D": "DEBUG", b"I": "INFO", b"W": "WARNING", b"E": "ERROR", b"C": "CRITICAL", b"F": "FATAL"
}  # fmt: skip
_ISO_STAMP = re.compile(_ISO)
_ZONE_OFFSET = re.compile(rb"[+-]\d{2}:?\d{2}\]?$")
_AS_ZERO = bytes.maketrans(b"123456789", b"000000000")  # a stamp's shape: its digits as 0


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
    stamps = b"|".join([_ISO, _SYSLOG, *(strptime_regex(f).encode() for f in formats)])
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
def _after_newline(
    formats: tuple[str, ...], shape: bytes = b""
) -> tuple[re.Pattern[bytes], re.Pattern[bytes]]:
    """`dated` and `level` of `line_shapes(formats)`, matched after a newline instead of at
    `^`: the engine then jumps from newline to newline rather than trying `^` at every
    byte, twice as fast (a block's first line, with no newline before it, is matched with
    `line_shapes` itself). With `shape`, an ISO stamp with its digits written as 0, stamps
    of exactly that shape followed by a space are tried first, without the optional parts
    of the general ISO expression; it would match them the same way (a space ends each of
    its optional parts, and no level word starts at a space), so the matches are the same,
    found sooner. `level` yields the first letter of the level (`_LEVEL_NAMES`): Python
    shares one-byte strings, where it would make a new level word for every line."""
    stamps = b"|".join([_ISO, _SYSLOG, *(strptime_regex(f).encode() for f in formats)])
    fast = re.escape(shape).replace(b"0", rb"\d")
    dated = (fast + rb"(?= )|" if shape else b"") + stamps
    level = (fast + rb" |" if shape else b"") + stamps
    letter = rb"(?=([" + b"".join(_LEVEL_NAMES) + rb"]))"
    return (
        re.compile(rb"\n(?P<stamp>" + dated + rb")"),
        re.compile(rb"\n(?:" + level + rb")[^\n]*?\b" + letter + rb"(?:" + _LEVELS + rb")\b"),
    )


def _block_regexes(shapes: LineShapes, block: bytes) -> tuple[re.Pattern[bytes], re.Pattern[bytes]]:
    """`_after_newline` for this block: its first stamp, if ISO, gives the shape tried first."""
    first = shapes.dated.match(block) or _after_newline(shapes.formats)[0].search(block)
    stamp = first["stamp"] if first else b""
    shape = stamp.translate(_AS_ZERO) if _ISO_STAMP.fullmatch(stamp) else b""
    return _after_newline(shapes.formats, shape)


def _dated_stamps(shapes: LineShapes, block: bytes) -> list[bytes]:
    """The stamps of the block's dated lines, in order."""
    found = _block_regexes(shapes, block)[0].findall(block)
    first = shapes.dated.match(block)
    if first:
        found.insert(0, first["stamp"])
    return found


def _dated_levels(shapes: LineShapes, block: bytes) -> list[bytes]:
    """The first letter of the level of each of the block's dated lines that has one."""
    found = _block_regexes(shapes, block)[1].findall(block)
    first = shapes.level.match(block)
    if first:
        found.append(first[1][:1])
    return found


def _sortable(stamps: list[bytes]) -> bool:
    """Whether `stamps` sort as bytes in time order: ISO 8601, all of one shape (digit for
    digit) and one zone. One more shape, or two offsets (a change to summer time), and the
    earliest and latest stamps can no longer be found by comparing bytes."""
    first = stamps[0]
    if _ISO_STAMP.fullmatch(first) is None:
        return False
    joined = b"".join(stamps)
    if joined.translate(_AS_ZERO) != first.translate(_AS_ZERO) * len(stamps):
        return False
    zone = _ZONE_OFFSET.search(first)
    if zone is None:  # Z, or no zone at all: one zone
        return True
    size = len(first)  # all stamps have it: every byte at one position of a stamp, at once
    return all(
        joined[index::size] == first[index : index + 1] * len(stamps)
        for index in range(zone.start(), zone.end())
    )


# Words whose lines need a closer look, found by plain substring search (C speed).
ERROR_WORDS = (b"ERROR", b"CRITICAL", b"FATAL")
ERROR_LEVELS = {b"ERROR", b"CRITICAL", b"FATAL"}
# Rate limiting, as `grep -i -E 'rate[ _-]?limit|\b429\b'` reads it (in a lower-cased
# copy of the block): each expression starts with a literal, which the engine looks for
# quickly, and checks what is around it only there.
RATE_LIMITING = (re.compile(rb"rate[ _-]?limit"), re.compile(rb"429(?<!\w429)(?!\w)"))


def lines_matching(data: bytes, patterns: tuple[re.Pattern[bytes], ...]) -> int:
    """How many lines of `data` any of `patterns` matches in."""
    starts = set()
    rfind = data.rfind
    for pattern in patterns:
        for match in pattern.finditer(data):
            starts.add(rfind(b"\n", 0, match.start()) + 1)
    return len(starts)


def line_starts(data: bytes, words: tuple[bytes, ...]) -> list[int]:
    """The start offsets of the lines of `data` containing any of `words`, in order,
    each once (one substring search per word)."""
    starts = set()
    find, rfind = data.find, data.rfind
    for word in words:
        position = find(word)
        while position != -1:
            starts.add(rfind(b"\n", 0, position) + 1)
            position = find(word, position + len(word))
    return sorted(starts)


_CACHE_LIMIT = 20_000  # messages whose ids have no digits (names) fill it
# a message's digits as 1 for the normalizing cache; 0 kept where `0x` is in the message,
# the one digit `_PLACEHOLDERS` write out
_DIGITS_AS_ONE = bytes.maketrans(b"0123456789", b"1111111111")
_NONZERO_AS_ONE = bytes.maketrans(b"23456789", b"11111111")
_UUID = rb"\b[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}\b"
_UUID_BYTES = re.compile(_UUID)

# the variable parts of an error message, most specific first
_PLACEHOLDERS = [
    (re.compile(_UUID.decode()), "<uuid>"),
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
    if stamp - utc_now() > timedelta(days=1):
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


def _text(path: Path, start: int = 0) -> Iterator[bytes]:
    """The file's text from byte `start` (of its uncompressed text), a piece at a time. A
    gzip file is inflated from a little compressed input at a time, every member of it:
    its output then stays in the processor's cache while it is scanned."""
    with path.open("rb") as stream:
        if path.suffix != ".gz":
            stream.seek(start)
            while piece := stream.read(BLOCK):
                yield piece
            return
        inflate, pending = zlib.decompressobj(wbits=31), False
        while data := stream.read(GZIP_INPUT_BYTES):
            while data:
                piece, pending = inflate.decompress(data), True
                data = b""
                if inflate.eof:  # the end of a member: another may follow
                    data, pending = inflate.unused_data, False
                    inflate = zlib.decompressobj(wbits=31)
                    if data[:2] != b"\x1f\x8b":  # padding after the last member
                        data = b""
                if start >= len(piece):
                    start -= len(piece)
                    continue
                yield piece[start:] if start else piece
                start = 0
        if pending:
            raise EOFError("compressed file ended before the end-of-stream marker was reached")


def _blocks(
    pieces: Iterator[bytes], tail: list[bytes], limit: int | None = None
) -> Iterator[bytes]:
    """Whole lines (a line never straddles two blocks) from at most `limit` bytes of
    `pieces`; an unfinished last line is left in `tail`, since its writer may still be
    writing it."""
    carry = b""
    left = -1 if limit is None else limit
    for piece in pieces:
        if 0 <= left < len(piece):
            piece = piece[:left]
        left -= len(piece) if left > 0 else 0
        cut = piece.rfind(b"\n") + 1
        if cut:
            yield carry + memoryview(piece)[:cut]  # one copy, not two
            carry = piece[cut:]
        else:
            carry += piece
        if not left:
            break
    tail.append(carry)


class _Window:
    """Which of a block's lines fall in the window. ISO stamps of one shape and one zone
    sort as bytes, so the block's earliest and latest stamp are found in C and only those
    two are parsed: a block wholly before or inside the window costs two parses, however
    its lines are ordered. A block that straddles the window's start, or mixes stamp
    shapes (syslog, several zones), is filtered line by line.

    Undated lines go with the dated line above them, across blocks too (`keep`); those at
    the start of a read, with none above, go with the first dated line below."""

    def __init__(self, since: datetime | None, year: int, shapes: LineShapes) -> None:
        self.since = since
        self.year = year
        self.shapes = shapes
        self.keep: bool | None = None  # whether the last dated line so far is in the window

    def begin(self) -> None:
        """A new read: no dated line above its first lines."""
        self.keep = None

    def _inside(self, raw: bytes) -> bool | None:
        stamp = parse_stamp(raw, self.year, self.shapes.formats)
        return None if stamp is None else stamp >= self.since

    def cut(self, block: bytes) -> bytes:
        if self.since is None:
            return block
        stamps = _dated_stamps(self.shapes, block)
        if not stamps:
            return block if self.keep else b""
        head = 0  # where the first dated line starts: undated lines before it follow `keep`
        if not self.shapes.dated.match(block):
            head = _block_regexes(self.shapes, block)[0].search(block).start() + 1
        keep_head = self.keep
        if head and keep_head is None:
            keep_head = bool(self._inside(stamps[0]))
        whole = False
        if _sortable(stamps):
            if self._inside(max(stamps)) is False:
                kept, self.keep = b"", False
            elif self._inside(min(stamps)):
                kept, self.keep, whole = b"", True, True
            else:
                kept, self.keep = self._filter(block, head)
        else:
            kept, self.keep = self._filter(block, head)
        if whole:
            return block if keep_head or not head else block[head:]
        return block[:head] + kept if keep_head and head else kept

    def _filter(self, block: bytes, head: int) -> tuple[bytes, bool]:
        """The dated lines from `head` on in the window, each with its undated lines, and
        whether the last one is."""
        lines = block[head:].split(b"\n")
        if not lines[-1]:
            lines.pop()
        dated = self.shapes.dated.match
        kept = []
        keep = False
        last_stamp = None
        for line in lines:
            match = dated(line)
            if match and match["stamp"] != last_stamp:  # lines of one second: one parse
                last_stamp = match["stamp"]
                keep = bool(self._inside(last_stamp))
            if keep:
                kept.append(line)
        return (b"\n".join(kept) + b"\n" if kept else b""), keep


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
        self._keys: dict[bytes, str] = {}  # a message's shape -> its normalized pattern
        self._seen: dict[str, list] = {}  # pattern -> [count, first stamp, last stamp, line]
        self._hours: dict[bytes, list] = {}  # stamp up to its hour -> [errors, a full stamp]

    def feed(self, block: bytes) -> None:
        triage = self._triage
        triage.bytes_read += len(block)
        data = self.window.cut(block)
        if not data:
            return
        letters = b"".join(_dated_levels(self.shapes, data))  # counted faster as one string
        levels = {letter: count for letter in _LEVEL_NAMES if (count := letters.count(letter))}
        for letter, count in levels.items():
            triage.levels[_LEVEL_NAMES[letter]] += count
            triage.lines += count
        if self.requests is not None:
            triage.requests += len(self.requests.findall(data))
        triage.rate_limited += lines_matching(data.lower(), RATE_LIMITING)
        # only the error levels the block has are looked for: each word is one more pass
        words = tuple(word for word in ERROR_WORDS if word[:1] in levels)
        if words:
            self._errors(data, line_starts(data, words))

    def _pattern(self, message: bytes) -> str:
        """`normalize(message)`, cached by the message's shape: its digits written as 1
        (but 0 kept if it says `0x`) and, if that shape is new, its UUIDs replaced too, so
        the same failure on another item hits the cache. The expressions of `normalize`
        treat those digits alike, so a message and its shape are normalized alike, except
        for the digits the placeholders leave (`web01`): a pattern with a digit left in it
        is the message's own, not shared."""
        if message.isascii():  # bytes and text expressions read ASCII alike, only ASCII
            digits = _NONZERO_AS_ONE if b"0x" in message else _DIGITS_AS_ONE
            key = message.translate(digits)
            pattern = self._keys.get(key)
            if pattern is None and b"-" in message:
                key = _UUID_BYTES.sub(b"<uuid>", message).translate(digits)
                pattern = self._keys.get(key)
        else:
            key = message
            pattern = self._keys.get(key)
        if pattern is None:
            if len(self._keys) > _CACHE_LIMIT:  # ids without digits: keep memory flat
                self._keys.clear()
            pattern = normalize(key.decode("utf-8", "replace"))
            if key is not message and ("0" in pattern or "1" in pattern):
                pattern = ""
            self._keys[key] = pattern
        return pattern or normalize(message.decode("utf-8", "replace"))

    def _errors(self, data: bytes, starts: list[int]) -> None:
        """Count the error lines among the lines of `data` at `starts` under their
        patterns. Stamps stay bytes until the triage is read (files are read oldest
        first, so the first stamp seen is the first): per error line this is a few dict
        lookups."""
        entry_at, pattern_of = self.shapes.entry.match, self._pattern
        seen, hours = self._seen, self._hours
        for start in starts:
            entry = entry_at(data, start)
            if entry is None:
                continue
            stamp, level, message = entry.group("stamp", "level", "message")
            if level not in ERROR_LEVELS:  # a line is an error by its level, not a word
                continue
            key = pattern_of(message)
            counted = seen.get(key)
            if counted is None:
                seen[key] = [1, stamp, stamp, entry[0]]
            else:
                counted[0] += 1
                counted[2] = stamp
            prefix = stamp.split(b":", 1)[0]
            hour = hours.get(prefix)
            if hour is None:
                hours[prefix] = [1, stamp]
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
        return self._read(path, start, None, finished_lines_only)

    def _read(self, path: Path, start: int, end: int | None, finished_lines_only: bool) -> int:
        """`read` without counting the file, and only up to byte `end` if given."""
        self.window.begin()
        tail: list[bytes] = []
        position = start
        try:
            for block in _blocks(_text(path, start), tail, None if end is None else end - start):
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
        for block in _blocks(_text(path), tail):
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
PART_BYTES = 8 * 2**20  # a plain file is read in parts of about this: they even out the end
GZIP_COST = 1.6  # reading a byte of compressed text costs this much (inflating it too)
_ALIGN_BYTES = 1 << 16  # how far past a planned cut its first dated line is looked for


@dataclass(frozen=True)
class _Part:
    """The lines of one file that start in [start, end) of its text (`end` None: to its
    end); `cost` is about the bytes it means to read, a compressed one counting more."""

    path: Path
    start: int
    end: int | None
    cost: float


def _text_size(path: Path) -> tuple[int, bool]:
    """About how many bytes of text a file holds, and whether it is compressed: for gzip
    the size its trailer records (modulo 4 GiB: a larger file is guessed from its own).
    A file that cannot be read counts 0 here; reading it will say why."""
    gz = path.suffix == ".gz"
    try:
        size = path.stat().st_size
        if not gz:
            return size, gz
        with path.open("rb") as stream:
            stream.seek(max(size - 4, 0))
            recorded = int.from_bytes(stream.read(4), "little")
    except OSError:
        return 0, gz
    return (recorded if recorded >= size else 4 * size), gz


def _dated_line_starts(path: Path, cuts: list[int], shapes: LineShapes) -> list[int]:
    """For each planned cut, where the first whole dated line after it starts, so that no
    part begins inside an entry (its undated lines stay with it); a cut with none near it
    is dropped."""
    dated = _after_newline(shapes.formats)[0]
    starts: list[int] = []
    with path.open("rb") as stream:
        for cut in cuts:
            stream.seek(cut - 1)  # from the newline before a line starting at the cut
            near = stream.read(_ALIGN_BYTES)
            found = dated.search(near, 0, near.rfind(b"\n"))  # a stamp on a whole line
            if found is not None and (not starts or cut - 1 + found.start() + 1 > starts[-1]):
                starts.append(cut - 1 + found.start() + 1)
    return starts


def _parts(files: list[Path], shapes: LineShapes) -> list[_Part]:
    """The files as parts to share among processes: a compressed file whole (it can only
    be read from its start), a large plain file in several parts cut at dated lines."""
    parts = []
    for path in files:
        size, gz = _text_size(path)
        count = 1 if gz else round(size / PART_BYTES)
        if count < 2:
            parts.append(_Part(path, 0, None, size * (GZIP_COST if gz else 1)))
            continue
        cuts = [size * number // count for number in range(1, count)]
        starts = [0, *_dated_line_starts(path, cuts, shapes)]
        for begin, end in zip(starts, [*starts[1:], None], strict=True):
            parts.append(_Part(path, begin, end, (size if end is None else end) - begin))
    return parts


def _read_part(
    part: _Part,
    keys: dict[bytes, str],
    year: int,
    since: datetime | None,
    requests: str | None,
    formats: tuple[str, ...],
) -> Scanner:
    """One part read by a scanner of its own, which uses the normalizing cache `keys`."""
    scanner = Scanner(since, requests, formats)
    scanner._keys = keys
    scanner.year = scanner.window.year = year  # every process reads syslog's year alike
    if part.start == 0:
        scanner._triage.files += 1
    scanner._read(part.path, part.start, part.end, False)
    return scanner


def _read_claimed(
    parts: list[_Part], order: list[int], counter, found: dict[int, Scanner], *settings
) -> None:
    """Read parts, taking the next one in `order` from the shared `counter` until none is
    left, into `found` (by part). Scanners in one process share the normalizing cache."""
    keys: dict[bytes, str] = {}
    while True:
        with counter.get_lock():
            taken = counter.value
            counter.value += 1
        if taken >= len(order):
            return
        found[order[taken]] = _read_part(parts[order[taken]], keys, *settings)


def _scan_worker(parts: list[_Part], order: list[int], counter, results, *settings) -> None:
    """A worker process: its share of the parts, sent back as one message at the end
    (part numbers missing from it, if it failed, are read again by the caller)."""
    found: dict[int, Scanner] = {}
    try:
        _read_claimed(parts, order, counter, found, *settings)
    finally:
        for scanner in found.values():
            scanner._keys = {}  # a cache, not a result: it need not travel back
        results.send(found)
        results.close()


def scan(
    files: list[Path],
    since: datetime | None,
    requests: str | None = None,
    formats: tuple[str, ...] = (),
) -> Triage:
    """Triage `files` (oldest first). A large set is cut into parts (whole compressed
    files, ranges of lines of plain ones) that this process and a worker process per other
    core take one at a time, the largest first, until none is left; the parts' results are
    added up in file order, so it is the same triage as reading the files one by one."""
    processes = len(os.sched_getaffinity(0))
    settings = (datetime.now(UTC).year, since, requests, tuple(formats))
    parts = []
    if processes > 1 and sum(_text_size(path)[0] for path in files) >= PARALLEL_FROM_BYTES:
        parts = _parts(files, line_shapes(tuple(formats)))
    if len(parts) < 2:
        scanner = Scanner(since, requests, formats)
        for path in files:
            scanner.read(path)
        return scanner.triage
    import multiprocessing  # here: most callers read a few files in their own process

    order = sorted(range(len(parts)), key=lambda index: -parts[index].cost)  # largest first
    # spawn, not fork: the caller may be a Jupyter kernel with threads of its own
    context = multiprocessing.get_context("spawn")
    counter = context.Value("i", 0)
    workers = []
    for _ in range(min(processes, len(parts)) - 1):
        receiver, sender = context.Pipe(duplex=False)
        worker = context.Process(
            target=_scan_worker,
            args=(parts, order, counter, sender, *settings),
            daemon=True,
        )
        worker.start()
        sender.close()  # the worker's end: its exit is then seen as the end of the pipe
        workers.append((worker, receiver))
    found: dict[int, Scanner] = {}
    try:
        _read_claimed(parts, order, counter, found, *settings)
        for worker, receiver in workers:
            with contextlib.suppress(EOFError):  # it died: its parts are read below
                found.update(receiver.recv())
            worker.join()
    finally:
        for worker, receiver in workers:
            receiver.close()
            if worker.is_alive():
                worker.terminate()
    keys: dict[bytes, str] = {}
    whole = found.get(0) or _read_part(parts[0], keys, *settings)
    for index in range(1, len(parts)):
        whole.absorb(found.get(index) or _read_part(parts[index], keys, *settings))
    whole._triage.unreadable = list(dict.fromkeys(whole._triage.unreadable))  # once per file
    return whole.triage
