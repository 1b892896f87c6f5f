"""How long runs take against how long they should: the manuals' rule that a run taking
twice its expected time is an incident, in one place for every kind of run.

A run's time comes from a log line (a regex with a group `seconds` or `minutes`, read by
the log scanner's streaming matcher) or from a numeric field of a file set's JSON files.
`against_expected` turns the latest run into a multiple of its expected time; the
expected time is declared (`durations:` in a profile) or, for a file of a workbook
pipeline, predicted from that file's own history.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import humanfriendly
import pandas as pd

from opslib.clock import utc_now
from opslib.probes import Metric, ProbeError
from opslib.probes.files import json_schema, matched, read_json
from opslib.probes.logs import log_files
from opslib.probes.logscan import matching_lines
from opslib.profiles import Duration, Profile

UNIT_SECONDS = {"s": 1.0, "min": 60.0, "h": 3600.0}
SHOWN_RUNS = 12


def timed_runs(profile: Profile, pattern: str, since: datetime) -> pd.DataFrame:
    """One row per log line where `pattern` matches, in log order: `finished` (the line's
    time), `seconds` (from its group `seconds` or `minutes`) and its other named groups as
    text. Lines dated before `since` are left out; a line without a date is kept (it
    cannot be placed in the window, and leaving it out would hide a run)."""
    formats = tuple(profile.targets.logs.timestamp_formats) if profile.targets.logs else ()
    rows = []
    for stamp, groups in matching_lines(log_files(profile), pattern, formats):
        if stamp is not None and stamp < since:
            continue
        if "seconds" in groups:
            seconds = float(groups.pop("seconds"))
        elif "minutes" in groups:
            seconds = 60 * float(groups.pop("minutes"))
        else:
            raise ProbeError(f"the regex {pattern!r} needs a group named seconds or minutes")
        rows.append({"finished": stamp, "seconds": seconds, **groups})
    return pd.DataFrame(rows) if rows else pd.DataFrame(columns=["finished", "seconds"])


def _from_files(profile: Profile, settings: Duration) -> pd.DataFrame:
    schema = json_schema(profile, settings.file_set)
    rows = []
    for path in matched(profile, settings.file_set):
        document, reason = read_json(path, schema)
        value = document.get(settings.field) if not reason and isinstance(document, dict) else None
        if isinstance(value, int | float):
            rows.append({"finished": path.name, "seconds": value * UNIT_SECONDS[settings.unit]})
    return pd.DataFrame(rows, columns=["finished", "seconds"])


def describe(seconds: float) -> str:
    return humanfriendly.format_timespan(seconds, max_units=2)


def against_expected(name: str, runs: pd.DataFrame, expected_s: float, basis: str = "") -> Metric:
    """The latest of `runs` (oldest first, with `seconds`) as a multiple of `expected_s`;
    `basis` says where the expectation comes from. The table lists the recent runs."""
    runs = runs.assign(x_expected=(runs["seconds"] / expected_s).round(2) if expected_s else None)
    latest = runs.iloc[-1]
    ratio = None if not expected_s else float(latest["x_expected"])
    times = f"{ratio:g}x " if ratio is not None else ""
    return Metric(
        ratio,
        f"{name}: the latest run took {describe(latest['seconds'])}, "
        f"{times}the expected {describe(expected_s)}{basis}",
        runs.tail(SHOWN_RUNS),
        label=name,
    )


def ratios(profile: Profile, window_hours: float = 24 * 30) -> list[Metric]:
    """Per declared duration, the latest run's time as a multiple of the expected time;
    the table lists the recent runs (log sources within the window)."""
    since = utc_now() - timedelta(hours=window_hours)
    metrics = []
    for name, settings in profile.durations.items():
        runs = (
            timed_runs(profile, settings.log, since)
            if settings.log
            else _from_files(profile, settings)
        )
        if runs.empty:
            source = "logs" if settings.log else f"file set {settings.file_set}"
            metrics.append(Metric(None, f"{name}: no run found in the {source}", label=name))
            continue
        earlier = runs["seconds"].iloc[:-1]
        usual = f", usually {describe(earlier.median())}" if len(earlier) else ""
        expected, basis = settings.expected, ""
        if settings.per:
            try:
                expected, basis = _scaled(profile, name, settings, runs.iloc[-1]["finished"])
            except ProbeError as exc:
                metrics.append(Metric(None, f"{name}: {exc.reason}", label=name))
                continue
        metrics.append(against_expected(name, runs, expected, basis + usual))
    return metrics


def _scaled(
    profile: Profile, name: str, settings: Duration, finished: datetime | None
) -> tuple[float, str]:
    """The expected time of the run that ended at `finished` for the items it handled: the
    newest count `count_log` gave up to then, at `expected` per `per` items."""
    if not settings.count_log:
        raise ProbeError(f"durations.{name}.per needs count_log, a regex with a group count")
    finished = None if pd.isna(finished) else finished  # an undated line: the newest count
    formats = tuple(profile.targets.logs.timestamp_formats) if profile.targets.logs else ()
    counts = []
    for stamp, groups in matching_lines(log_files(profile), settings.count_log, formats):
        if "count" not in groups:
            raise ProbeError(f"durations.{name}.count_log needs a group named count")
        if stamp is None or finished is None or stamp <= finished:
            number = int(re.sub(r"[,_ ]", "", groups["count"]))
            counts.append((stamp is not None, stamp or datetime.min, len(counts), number))
    if not counts:
        raise ProbeError(f"no line before the run ended matches durations.{name}.count_log")
    count = max(counts, key=lambda row: row[:3])[3]
    per = f"{describe(settings.expected)} per {settings.per:,}"
    return settings.expected * count / settings.per, f" for {count:,} items ({per})"
