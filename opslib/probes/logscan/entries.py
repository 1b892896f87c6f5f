"""The scanner's path for formats read line by line (every format but `plain`).

Each line is taken apart by its format's parser; what is counted is the same as on the
fast path: levels and lines, error patterns with their first and last time and their
hour, rate-limit lines and requests, over the lines inside the window. Memory stays flat:
a block at a time, a few counters, one entry per error pattern.

The window is decided per entry by its own time. A line that is no entry (a traceback)
goes with the entry above it, and those at the start of a read, with none above, with
the first entry below. An entry without a time of its own (`ERROR:root:...`, a JSON line
with no time key) goes with the dated entry above it; with none above it in this read it
cannot be placed in a window, so it is counted and tallied as undated, for the probe to
say so instead of pretending it knows when it was written.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from opslib.probes.logscan.formats import LineFormat
from opslib.probes.logscan.levels import ERROR_NAMES
from opslib.probes.logscan.patterns import RATE_LIMITING, lines_matching
from opslib.probes.logscan.stamps import AS_ZERO, zone_free_iso

if TYPE_CHECKING:
    from opslib.probes.logscan.scanner import Scanner

_TIMES_KEPT = 4096  # parsed stamps remembered (lines of one second share one)


class EntryFeed:
    """Feeds the blocks of one read of a file in a line format into `scanner`."""

    def __init__(self, scanner: Scanner, line_format: LineFormat) -> None:
        self.scanner = scanner
        self.format = line_format
        self.keep: bool | None = None  # whether the last entry with a time is in the window
        self.current: bool | None = None  # whether the last entry is counted
        self.pending: list[bytes] = []  # lines at the read's start, before any entry
        self._times: dict[Any, datetime | None] = {}
        # ISO stamps of one shape (digits as 0) and no UTC offset sort as their times do:
        # the earliest known in the window and the latest known before it decide for
        # those sorting after (before) them, without parsing (`inside`)
        self._shape: bytes | None = None
        # (a profile's own formats are tried first and may read an ISO-looking stamp
        # otherwise, day first: then every stamp is parsed)
        self._sortable = not scanner.shapes.formats
        self._first_in: bytes | None = None
        self._last_out: bytes | None = None

    def when(self, raw: Any) -> datetime | None:
        """The raw stamp's time (naive UTC), parsed once per distinct stamp."""
        if raw is None:
            return None
        times = self._times
        try:
            return times[raw]
        except KeyError:
            if len(times) > _TIMES_KEPT:
                times.clear()
            stamp = times[raw] = self.format.when(raw, self.scanner.year)
            return stamp
        except TypeError:  # an unhashable value where a time should be: no time
            return None

    def inside(self, raw: Any, since: datetime) -> bool | None:
        """Whether the entry stamped `raw` is in the window (None: it has no time)."""
        key = raw.encode() if type(raw) is str else raw
        shaped = type(key) is bytes and key.translate(AS_ZERO) == self._shape
        if shaped:
            if self._first_in is not None and key >= self._first_in:
                return True
            if self._last_out is not None and key <= self._last_out:
                return False
        stamp = self.when(raw)
        if stamp is None:
            return None
        now_in = stamp >= since
        if self._shape is None and self._sortable and type(key) is bytes and zone_free_iso(key):
            self._shape, shaped = key.translate(AS_ZERO), True
        if shaped and now_in and (self._first_in is None or key < self._first_in):
            self._first_in = key
        elif shaped and not now_in and (self._last_out is None or key > self._last_out):
            self._last_out = key
        return now_in

    def feed(self, block: bytes) -> None:
        scanner = self.scanner
        triage = scanner._triage
        triage.bytes_read += len(block)
        since = scanner.window.since
        lines = bytes(block).split(b"\n")
        if not lines[-1]:
            lines.pop()
        if since is None:
            entries = self._everything(lines)
            data = block
        else:
            entries, kept = self._windowed(lines, since)
            data = b"\n".join(kept)
        levels: dict[str, int] = {}
        rate_limited = 0
        for _line, level, _stamp, _message, status in entries:
            levels[level] = levels.get(level, 0) + 1
            if status == 429:
                rate_limited += 1
        for level, count in levels.items():
            triage.levels[level] += count
            triage.lines += count
        if self.format.requests:  # an access log: every entry is a request, 429 rate limiting
            triage.requests += len(entries)
            triage.rate_limited += rate_limited
        else:
            if scanner.requests is not None:
                triage.requests += len(scanner.requests.findall(data))
            triage.rate_limited += lines_matching(data.lower(), RATE_LIMITING)
        when = self.when
        for line, level, raw, message, status in entries:
            if level in ERROR_NAMES:
                scanner._entry_error(line, when(raw), message, status)

    def _everything(self, lines: list[bytes]) -> list[tuple]:
        """Every entry of `lines` (no window): (line, level, raw stamp, message, status)."""
        parse = self.format.parse
        found = []
        for line in lines:
            entry = parse(line)
            if entry is not None:
                raw, level, message, status = entry
                found.append((line, level, raw, message, status))
        return found

    def _windowed(self, lines: list[bytes], since: datetime) -> tuple[list[tuple], list[bytes]]:
        """The entries of `lines` in the window, and every line that goes with them."""
        parse, inside = self.format.parse, self.inside
        keep, current, pending = self.keep, self.current, self.pending
        found: list[tuple] = []
        kept: list[bytes] = []
        undated = 0
        for line in lines:
            entry = parse(line)
            if entry is None:  # no entry: it goes with the one above
                if current:
                    kept.append(line)
                elif current is None:
                    pending.append(line)
                continue
            raw, level, message, status = entry
            now_in = inside(raw, since)
            if now_in is not None:
                keep = current = now_in
            elif keep is None:
                current = True
                undated += 1
            else:
                current = keep
            if pending:
                if current:
                    kept.extend(pending)
                pending.clear()
            if current:
                kept.append(line)
                found.append((line, level, raw, message, status))
        self.keep, self.current = keep, current
        self.scanner._triage.undated += undated
        return found, kept
