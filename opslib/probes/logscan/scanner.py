"""The scanner: one streaming pass that counts levels, error patterns and rate-limit
lines over the lines inside a time window.

Each file is read in its own format (`log_format`, or the one its first lines show for
`auto`, see `detect`). A plain file, stamped lines with capital levels, takes the fast
path below: regular expressions over whole blocks. Any other format is read line by
line (`entries.EntryFeed`) into the same counters; a file in no format opslib knows is
not read but named in `Triage.unrecognized`."""

from __future__ import annotations

import re
import zlib
from collections import Counter
from datetime import datetime
from pathlib import Path

from opslib.clock import naive_utc, utc_now
from opslib.probes.logscan.detect import AUTO, file_format
from opslib.probes.logscan.entries import EntryFeed
from opslib.probes.logscan.formats import PLAIN, line_format
from opslib.probes.logscan.patterns import (
    CACHE_LIMIT,
    DIGITS_AS_ONE,
    ERROR_LEVELS,
    ERROR_WORDS,
    EXAMPLE_CHARS,
    NONZERO_AS_ONE,
    RATE_LIMITING,
    UUID_BYTES,
    line_starts,
    lines_matching,
    normalize,
    normalize_request,
)
from opslib.probes.logscan.reading import line_blocks, text_pieces
from opslib.probes.logscan.results import Pattern, Triage
from opslib.probes.logscan.stamps import (
    LEVEL_NAMES,
    LineShapes,
    block_regexes,
    dated_levels,
    dated_stamps,
    line_shapes,
    parse_stamp,
    sortable,
)


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
        stamps = dated_stamps(self.shapes, block)
        if not stamps:
            return block if self.keep else b""
        head = 0  # where the first dated line starts: undated lines before it follow `keep`
        if not self.shapes.dated.match(block):
            head = block_regexes(self.shapes, block)[0].search(block).start() + 1
        keep_head = self.keep
        if head and keep_head is None:
            keep_head = bool(self._inside(stamps[0]))
        whole = False
        if sortable(stamps):
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
        self,
        since: datetime | None,
        requests: str | None = None,
        formats: tuple[str, ...] = (),
        log_format: str = AUTO,
    ) -> None:
        if since is not None:  # stamps are compared as naive UTC
            since = naive_utc(since)
        self._triage = Triage(since)
        self.year = utc_now().year
        self.shapes = line_shapes(tuple(formats))
        self.log_format = log_format
        if log_format not in (AUTO, PLAIN):
            line_format(log_format)  # an unknown name fails here, not in the middle of a read
        self.window = _Window(since, self.year, self.shapes)
        self.requests = re.compile(requests.encode(), re.M) if requests else None
        self._keys: dict[bytes, str] = {}  # a message's shape -> its normalized pattern
        self._seen: dict[str, list] = {}  # pattern -> [count, first stamp, last stamp, line]
        # stamp up to its hour (bytes; a datetime for line formats) -> [errors, a full stamp]
        self._hours: dict[bytes | datetime, list] = {}

    def feed(self, block: bytes) -> None:
        triage = self._triage
        triage.bytes_read += len(block)
        data = self.window.cut(block)
        if not data:
            return
        letters = b"".join(dated_levels(self.shapes, data))  # counted faster as one string
        levels = {letter: count for letter in LEVEL_NAMES if (count := letters.count(letter))}
        for letter, count in levels.items():
            triage.levels[LEVEL_NAMES[letter]] += count
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
            digits = NONZERO_AS_ONE if b"0x" in message else DIGITS_AS_ONE
            key = message.translate(digits)
            pattern = self._keys.get(key)
            if pattern is None and b"-" in message:
                key = UUID_BYTES.sub(b"<uuid>", message).translate(digits)
                pattern = self._keys.get(key)
        else:
            key = message
            pattern = self._keys.get(key)
        if pattern is None:
            if len(self._keys) > CACHE_LIMIT:  # ids without digits: keep memory flat
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

    def _entry_error(
        self, line: bytes, stamp: datetime | None, message: bytes | str, status: int | None
    ) -> None:
        """Count an error entry of a line format under its pattern, as `_errors` does for
        the fast path; its time is already read (None: the entry has none)."""
        if status is not None:  # a request: its status, method and route are the pattern
            key = self._request_pattern(status, message)
        else:
            key = self._pattern(message.encode() if isinstance(message, str) else message)
        counted = self._seen.get(key)
        if counted is None:
            self._seen[key] = [1, stamp, stamp, line[: 4 * EXAMPLE_CHARS]]
        else:
            counted[0] += 1
            if stamp is not None:
                counted[2] = stamp
        if stamp is not None:
            hour = stamp.replace(minute=0, second=0, microsecond=0)
            found = self._hours.get(hour)
            if found is None:
                self._hours[hour] = [1, stamp]
            else:
                found[0] += 1

    def _request_pattern(self, status: int, request: bytes | str) -> str:
        """`normalize_request`, cached by status and request (a failing route repeats)."""
        raw = request.encode() if isinstance(request, str) else request
        key = b"\0%d %s" % (status, raw)  # apart from the messages `_pattern` caches
        pattern = self._keys.get(key)
        if pattern is None:
            if len(self._keys) > CACHE_LIMIT:
                self._keys.clear()
            pattern = self._keys[key] = normalize_request(status, raw.decode("utf-8", "replace"))
        return pattern

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
        mine.unrecognized += theirs.unrecognized
        mine.undated += theirs.undated
        mine.formats.update(theirs.formats)
        for key, (count, first, last, line) in later._seen.items():
            seen = self._seen.setdefault(key, [0, first, last, line])
            seen[0] += count
            if last is not None:  # an undated entry leaves the last time as it was
                seen[2] = last
        for prefix, (count, stamp) in later._hours.items():
            self._hours.setdefault(prefix, [0, stamp])[0] += count

    @property
    def triage(self) -> Triage:
        """The triage so far, its error patterns and hours turned into datetimes."""
        found = self._triage

        def when(stamp: bytes | datetime | None) -> datetime:
            if stamp is None or isinstance(stamp, datetime):  # line formats: already read
                return stamp or datetime.min
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
        left for the next scan instead of being counted now. A file in no format opslib
        knows is not read (`Triage.unrecognized`): `start` is returned."""
        self._triage.files += 1
        kind = self.format_of(path)
        if kind is None:
            self._triage.unrecognized.append(path.name)
            return start
        self._triage.formats[kind] += 1
        return self._read(path, start, None, finished_lines_only, kind)

    def format_of(self, path: Path) -> str | None:
        """The format `path` is read in (None: its first lines are in none opslib knows)."""
        return file_format(path, self.log_format, self.shapes.formats)

    def _read(
        self,
        path: Path,
        start: int,
        end: int | None,
        finished_lines_only: bool,
        kind: str = PLAIN,
    ) -> int:
        """`read` without counting the file, in format `kind`, only up to byte `end` if
        given."""
        self.window.begin()
        feed = (
            self.feed
            if kind == PLAIN
            else EntryFeed(self, line_format(kind, self.shapes.formats)).feed
        )
        tail: list[bytes] = []
        position = start
        try:
            for block in line_blocks(
                text_pieces(path, start), tail, None if end is None else end - start
            ):
                feed(block)
                position += len(block)
        except (OSError, EOFError, zlib.error) as exc:  # a cut-off archive, a vanished file
            self._triage.unreadable.append(f"{path.name}: {exc}")
            return position
        if tail[0] and not finished_lines_only:
            feed(tail[0] + b"\n")
            position += len(tail[0])
        return position
