"""Which format a log file is written in, told from its first lines.

Every format reads the sample; the one that reads the most lines as entries wins, the
more specific on a tie (an access log line is also a line with a stamp in it). `plain`,
the fast path, wins whenever it reads as many lines as the best of them and gives each
the same level (and at once when it reads every line): a Python or logback log with
capital levels is then read as fast as any.
A file no format reads a line of is named, not read: nothing in it would count, and an
error rate of 0 % over it would say everything is fine when nothing was understood.
"""

from __future__ import annotations

import zlib
from pathlib import Path

from opslib.probes.logscan.formats import PLAIN, line_format
from opslib.probes.logscan.reading import open_log
from opslib.probes.logscan.stamps import LEVEL_NAMES, line_shapes

AUTO = "auto"
HEAD_BYTES = 64 * 1024
LONG_LINE_BYTES = 1 << 20  # read on to this for a first line longer than HEAD_BYTES
SAMPLE_LINES = 200
# tried in this order: on a tie (as many lines read) the first, the more specific, wins
SPECIFIC = ("syslog5424", "access", "json", "logfmt", "syslog", "logback", "python")


def head_lines(path: Path) -> list[bytes]:
    """The file's first non-blank lines (at most `SAMPLE_LINES`, from its first
    `HEAD_BYTES` of text, compressed or not, or up to its first newline), a line cut by
    that limit left out."""
    with open_log(path) as stream:
        head = stream.read(HEAD_BYTES)
        while b"\n" not in head and len(head) < LONG_LINE_BYTES:  # one long JSON record
            more = stream.read(HEAD_BYTES)
            if not more:
                break
            head += more
    lines = head.split(b"\n")
    if len(lines) > 1 and len(head) % HEAD_BYTES == 0:
        lines.pop()  # cut by the read (or ending the text: it is then the empty string)
    return [line for line in lines if line.strip()][:SAMPLE_LINES]


def reading(name: str, lines: list[bytes], formats: tuple[str, ...] = ()) -> list[str | None]:
    """The level format `name` gives each line (None: not an entry of that format)."""
    if name == PLAIN:
        level = line_shapes(formats).level.match
        return [LEVEL_NAMES[found[1][:1]] if (found := level(line)) else None for line in lines]
    parse = line_format(name, formats).parse
    return [entry[1] if (entry := parse(line)) else None for line in lines]


def detect(lines: list[bytes], formats: tuple[str, ...] = ()) -> str | None:
    """The format that reads the most of `lines` (plain when it reads as many, alike);
    None when no format reads any of them."""
    best_name, best, best_score = PLAIN, reading(PLAIN, lines, formats), 0
    plain = best
    plain_score = len(lines) - plain.count(None)
    if plain_score == len(lines):  # every line a plain entry: none can do better
        return PLAIN
    for name in SPECIFIC:
        found = reading(name, lines, formats)
        score = len(found) - found.count(None)
        if score > best_score:
            best_name, best, best_score = name, found, score
    if plain_score > best_score or (plain_score == best_score and plain == best):
        return PLAIN if plain_score else None
    return best_name


def file_format(path: Path, log_format: str = AUTO, formats: tuple[str, ...] = ()) -> str | None:
    """The format to read `path` in: `log_format` itself if its first lines hold an entry
    of it, the detected one for `auto`; None if none of them is read as an entry. An empty
    file (nothing written yet) or one whose start cannot be read (reading it will say
    why) is read in the format named, plain for `auto`."""
    fallback = PLAIN if log_format == AUTO else log_format
    try:
        lines = head_lines(path)
    except (OSError, EOFError, zlib.error):
        return fallback
    if not lines:
        return fallback
    if log_format == AUTO:
        return detect(lines, formats)
    return log_format if reading(log_format, lines, formats).count(None) < len(lines) else None
