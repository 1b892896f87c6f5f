"""Application logs: level counts and error rate in a time window, streamed line by line.

Lines are dated by an ISO 8601 timestamp at their start; lines without one (tracebacks,
continuations) belong to the entry above and are not counted on their own. Rotated
`.gz` files are read transparently.
"""

from __future__ import annotations

import glob
import gzip
import re
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO

import pandas as pd

from opslib.probes import Metric, ProbeError
from opslib.probes.queue import utc_now
from opslib.profiles import Profile

TIMESTAMP = re.compile(
    r"^\[?(\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2})?)"
)
LEVEL = re.compile(r"\b(DEBUG|INFO|WARNING|WARN|ERROR|CRITICAL|FATAL)\b")
ERROR_LEVELS = {"ERROR", "CRITICAL", "FATAL"}


def log_files(profile: Profile) -> list[Path]:
    """The files the profile's globs match now; none at all is an error worth reporting."""
    patterns = profile.log_globs()
    files = sorted({Path(match) for pattern in patterns for match in glob.glob(pattern)})
    if not files:
        raise ProbeError(f"no log file matches {', '.join(patterns)}")
    return files


def _open(path: Path) -> IO[str]:
    opener = gzip.open if path.suffix == ".gz" else open
    return opener(path, "rt", encoding="utf-8", errors="replace")


def _parse_time(text: str) -> datetime | None:
    try:
        stamp = datetime.fromisoformat(text.replace(",", "."))
    except ValueError:
        return None
    if stamp.tzinfo is not None:
        stamp = stamp.astimezone(UTC).replace(tzinfo=None)
    return stamp


def entries_since(files: list[Path], since: datetime) -> Iterator[tuple[datetime, str, Path]]:
    """(UTC time, level, file) of every dated, levelled line at or after `since`."""
    for path in files:
        with _open(path) as stream:
            for line in stream:
                stamp_match = TIMESTAMP.match(line)
                if not stamp_match:
                    continue
                stamp = _parse_time(stamp_match.group(1))
                level_match = LEVEL.search(line, stamp_match.end())
                if stamp is None or stamp < since or not level_match:
                    continue
                level = "WARNING" if level_match.group(1) == "WARN" else level_match.group(1)
                yield stamp, level, path


def error_rate(profile: Profile, window_hours: float = 24) -> Metric:
    """Percentage of log lines in the window at ERROR or worse; the table counts levels."""
    files = log_files(profile)
    levels = Counter(
        level for _, level, _ in entries_since(files, utc_now() - timedelta(hours=window_hours))
    )
    total = sum(levels.values())
    table = pd.DataFrame(sorted(levels.items()), columns=["level", "lines"]).set_index("level")
    if total == 0:
        return Metric(
            0.0, f"no log line in the last {window_hours:g} h across {len(files)} file(s)", table
        )
    errors = sum(count for level, count in levels.items() if level in ERROR_LEVELS)
    rate = 100.0 * errors / total
    return Metric(
        rate,
        f"{errors} of {total} log line(s) in the last {window_hours:g} h are errors ({rate:.1f}%)",
        table,
    )
