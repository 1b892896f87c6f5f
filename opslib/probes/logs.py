"""Application logs: error rate, the errors behind it, and rate limiting, over a window or
since the previous scan. The reading itself is `opslib.probes.logscan`, one streaming pass,
each file in the format `targets.logs.format` names (or the one its first lines show).

A file in no format opslib knows makes every log probe fail with a reason naming it and
that key: its lines would count for nothing, and an error rate of 0 % read from a log
nobody understood is the one answer worse than none."""

from __future__ import annotations

import glob
import json
import os
import time
from datetime import UTC, timedelta
from pathlib import Path

import pandas as pd

from opslib import paths
from opslib.clock import utc_now
from opslib.probes import Metric, ProbeError
from opslib.probes.logscan import AUTO, FORMAT_NAMES, Offsets, Scanner, Triage, scan
from opslib.profiles import Profile

TOP_PATTERNS = 10


def log_files(profile: Profile) -> list[Path]:
    """The files the profile's globs match now, oldest first (rotated ones before the
    live one); none at all is an error worth reporting."""
    patterns = profile.log_globs()
    # a dangling symlink, or a file rotated away since the glob, is not a log to read
    stamped = {
        path: status.st_mtime
        for pattern in patterns
        for path in map(Path, glob.glob(pattern))
        if (status := _stat(path)) is not None
    }
    if not stamped:
        raise ProbeError(f"no log file matches {', '.join(patterns)}")
    return sorted(stamped, key=lambda path: (stamped[path], str(path)))


def files_found(profile: Profile) -> Metric:
    """How many files the profile's log globs match now (none is an error)."""
    files = log_files(profile)
    return Metric(len(files), f"{len(files)} log file(s) match")


def _stat(path: Path) -> os.stat_result | None:
    try:
        return path.stat()
    except OSError:
        return None


def _scanner(profile: Profile, window_hours: float | None) -> Scanner:
    since = None if window_hours is None else utc_now() - timedelta(hours=window_hours)
    logs = profile.targets.logs
    return Scanner(since, logs.requests, tuple(logs.timestamp_formats), logs.format)


# One runbook asks for the same window several times (rate, patterns, rate limits): the
# logs are read once, and read again only when a file changed or a minute has passed.
_REUSE_FOR_S = 60.0
_last: dict[tuple, tuple[float, Triage]] = {}


def triage(profile: Profile, window_hours: float) -> Triage:
    """Everything the logs say about the last `window_hours`, in one pass."""
    logs = profile.targets.logs
    since = utc_now() - timedelta(hours=window_hours)
    # a file last written before the window holds nothing in it: not even opened
    recent = {
        path: status
        for path in log_files(profile)
        if (status := _stat(path)) and status.st_mtime >= since.replace(tzinfo=UTC).timestamp()
    }
    key = (
        profile.name,
        logs.format,
        window_hours,
        tuple((str(path), status.st_size, status.st_mtime_ns) for path, status in recent.items()),
    )
    reused = _last.get(key)
    if reused is not None and time.monotonic() - reused[0] < _REUSE_FOR_S:
        return _understood(profile, reused[1])
    found = scan(list(recent), since, logs.requests, tuple(logs.timestamp_formats), logs.format)
    _last.clear()  # one window kept: memory stays flat
    _last[key] = (time.monotonic(), found)
    return _understood(profile, found)


def _understood(profile: Profile, found: Triage) -> Triage:
    """`found`, unless a file was in no format opslib knows: then a reason naming it and
    `targets.logs.format` (whatever the other files say, they are not the whole story)."""
    if not found.unrecognized:
        return found
    names = ", ".join(found.unrecognized[:5])
    if len(found.unrecognized) > 5:
        names += f" and {len(found.unrecognized) - 5} more"
    log_format = profile.targets.logs.format
    if log_format == AUTO:
        raise ProbeError(
            f"no line of {names} is in a log format opslib knows (its first lines read as "
            f"none of {', '.join(FORMAT_NAMES)}): set targets.logs.format, or "
            "targets.logs.timestamp_formats for stamps of its own, or leave it out of "
            "targets.logs.paths"
        )
    raise ProbeError(
        f"no line of {names} is in the '{log_format}' format that targets.logs.format names "
        f"(read its first lines); set targets.logs.format to the one it is written in "
        f"({', '.join(FORMAT_NAMES)}) or to auto"
    )


def _notes(found: Triage) -> str:
    """What the summary adds about how the files were read: any not readable, formats
    other than plain, and entries counted without a time of their own."""
    notes = ""
    if found.unreadable:
        notes += f"; not readable: {'; '.join(found.unreadable)}"
    read_as = {kind: count for kind, count in sorted(found.formats.items()) if kind != "plain"}
    if read_as:
        notes += "; read as " + ", ".join(f"{kind} ({n} file(s))" for kind, n in read_as.items())
    if found.undated:
        notes += f"; {found.undated} line(s) with no time of their own counted as in the window"
    return notes


def _rate(found: Triage, where: str) -> tuple[float, str]:
    denominator, unit = (
        (found.requests, "request(s)") if found.requests else (found.lines, "log line(s)")
    )
    rate = 100.0 * found.errors / denominator if denominator else 0.0
    return (
        rate,
        f"{found.errors} error(s) in {denominator} {unit} {where} ({rate:.1f}%)" + _notes(found),
    )


def _levels(found: Triage) -> pd.DataFrame:
    return pd.DataFrame(sorted(found.levels.items()), columns=["level", "lines"]).set_index("level")


def error_rate(profile: Profile, window_hours: float = 24) -> Metric:
    """Errors per log line (or per request: an access log's lines, or the lines the
    profile's `requests` regex marks) in the window; the table counts lines by level."""
    found = triage(profile, window_hours)
    if found.lines == 0:  # a rate of nothing is no measurement: never a quiet 0 % OK
        raise ProbeError(
            f"no log line in the last {window_hours:g} h across {found.files} file(s): "
            "no rate to judge" + _notes(found)
        )
    rate, summary = _rate(found, f"in the last {window_hours:g} h")
    return Metric(rate, summary, _levels(found))


def patterns_table(found: Triage, limit: int = TOP_PATTERNS) -> pd.DataFrame:
    """The commonest error patterns with their counts, first and last time, and an example."""
    return pd.DataFrame(
        [
            {
                "count": pattern.count,
                "pattern": key,
                "first_seen": pattern.first,
                "last_seen": pattern.last,
                "example": pattern.example,
            }
            for key, pattern in found.top_patterns(limit)
        ],
        columns=["count", "pattern", "first_seen", "last_seen", "example"],
    )


def error_patterns(profile: Profile, window_hours: float = 24, limit: int = TOP_PATTERNS) -> Metric:
    """How many distinct error patterns (ids, numbers and paths folded) the window holds,
    with the commonest first: the `grep | sort | uniq -c | sort -rn` of the manuals."""
    found = triage(profile, window_hours)
    top = found.top_patterns(1)
    summary = (
        f"{len(found.patterns)} distinct error pattern(s) in the last {window_hours:g} h; "
        f"commonest ({top[0][1].count}x): {top[0][0][:120]}"
        if top
        else f"no error in the last {window_hours:g} h"
    )
    return Metric(len(found.patterns), summary, patterns_table(found, limit))


def rate_limits(profile: Profile, window_hours: float = 24) -> Metric:
    """Lines that say an upstream rate-limited us (HTTP 429, "rate limit") in the window."""
    found = triage(profile, window_hours)
    return Metric(
        found.rate_limited,
        f"{found.rate_limited} rate-limit line(s) (HTTP 429 or 'rate limit') in the last "
        f"{window_hours:g} h",
    )


def _state_file(profile: Profile, scan: str, suffix: str = ".json") -> Path:
    return paths.data_dir() / "log-offsets" / f"{profile.name}--{scan}{suffix}"


def _since_previous(profile: Profile, scan: str) -> Triage:
    """The lines written since the previous scan named `scan` (each runbook that checks
    every few minutes keeps its own place in the files)."""
    scanner = _scanner(profile, None)
    Offsets(_state_file(profile, scan)).scan(log_files(profile), scanner)
    return _understood(profile, scanner.triage)


def new_errors(profile: Profile, scan: str = "default") -> Metric:
    """Error rate over the lines written since the previous scan named `scan`."""
    found = _since_previous(profile, scan)
    rate, summary = _rate(found, "since the previous scan")
    return Metric(rate, summary, patterns_table(found))


# patterns remembered per scan; the oldest are forgotten first, so memory stays bounded
KNOWN_PATTERNS_KEPT = 10_000
BASELINE = "baseline"  # first seen by the first scan: history, not news


def _known(path: Path) -> dict[str, dict]:
    try:
        known = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return known if isinstance(known, dict) else {}


def unseen_patterns(profile: Profile, scan: str = "unseen", fresh_minutes: float = 60) -> Metric:
    """Error patterns that no scan named `scan` had seen until the last `fresh_minutes`:
    a new kind of error stays news for that long, so a check that runs every five
    minutes and notifies after two bad runs in a row still tells someone about it.

    Only the lines written since the previous scan are read. The first scan learns what
    the logs already hold as known (the way check_logfiles starts at the end of a log):
    errors from before monitoring began are the error-rate checks' business, not news."""
    known_file = _state_file(profile, scan, ".patterns.json")
    first = not _state_file(profile, scan).exists()
    found = _since_previous(profile, scan)
    known = {} if first else _known(known_file)
    now = utc_now()
    for key, pattern in found.patterns.items():
        entry = known.setdefault(
            key, {"first": BASELINE if first else now.isoformat(), "count": 0,
                  "example": pattern.example, "last": None},
        )  # fmt: skip
        entry["count"] += pattern.count
        entry["last"] = pattern.last.isoformat()
    kept = sorted(known.items(), key=lambda item: item[1]["last"] or "")[-KNOWN_PATTERNS_KEPT:]
    paths.write_atomically(known_file, json.dumps(dict(kept)))
    if first:
        return Metric(
            0,
            f"first scan: {len(found.patterns)} error pattern(s) already in the logs are now "
            "known; later scans report patterns never seen before" + _notes(found),
            patterns_table(found),
        )
    cutoff = (now - timedelta(minutes=fresh_minutes)).isoformat()
    fresh = sorted(
        (
            (key, entry)
            for key, entry in kept
            if entry["first"] != BASELINE and entry["first"] >= cutoff
        ),
        key=lambda item: -item[1]["count"],
    )
    if not fresh:
        return Metric(
            0,
            f"no error pattern new in the last {fresh_minutes:g} min; {found.errors} error "
            f"line(s) of known patterns since the previous scan" + _notes(found),
        )
    table = pd.DataFrame(
        [{"count": entry["count"], "pattern": key, "first_seen": entry["first"],
          "last_seen": entry["last"], "example": entry["example"]} for key, entry in fresh]
    )  # fmt: skip
    key, entry = fresh[0]
    return Metric(
        len(fresh),
        f"{len(fresh)} error pattern(s) first seen in the last {fresh_minutes:g} min; "
        f"commonest ({entry['count']}x): {key[:120]}" + _notes(found),
        table.head(TOP_PATTERNS),
    )


def errors_per_hour(profile: Profile, window_hours: float = 24) -> pd.DataFrame:
    """Error lines per hour over the window (hours without errors included), for a chart."""
    found = triage(profile, window_hours)
    end = utc_now().replace(minute=0, second=0, microsecond=0)
    hours = pd.date_range(end - timedelta(hours=int(window_hours)), end, freq="h")
    counts = [found.errors_per_hour.get(hour.to_pydatetime(), 0) for hour in hours]
    return pd.DataFrame({"errors": counts}, index=hours)
