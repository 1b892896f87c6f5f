"""How long runs take against how long they should: the manuals' rule that a run taking
twice its expected time is an incident, from log lines or from JSON summaries."""

from __future__ import annotations

from datetime import timedelta

import humanfriendly
import pandas as pd

from opslib.clock import utc_now
from opslib.probes import Metric, ProbeError
from opslib.probes.files import json_schema, matched, read_json
from opslib.probes.logs import log_files
from opslib.probes.logscan import dated_matches
from opslib.profiles import Duration, Profile

UNIT_SECONDS = {"s": 1.0, "min": 60.0, "h": 3600.0}
SHOWN_RUNS = 12


def _from_logs(profile: Profile, settings: Duration, window_hours: float) -> pd.DataFrame:
    since = utc_now() - timedelta(hours=window_hours)
    formats = tuple(profile.targets.logs.timestamp_formats) if profile.targets.logs else ()
    rows = []
    for stamp, groups in dated_matches(log_files(profile), settings.log, formats):
        if stamp < since:
            continue
        if "seconds" in groups:
            seconds = float(groups["seconds"])
        elif "minutes" in groups:
            seconds = 60 * float(groups["minutes"])
        else:
            raise ProbeError("the duration regex needs a group named seconds or minutes")
        rows.append({"finished": stamp, "seconds": seconds})
    return pd.DataFrame(rows, columns=["finished", "seconds"])


def _from_files(profile: Profile, settings: Duration) -> pd.DataFrame:
    schema = json_schema(profile, settings.file_set)
    rows = []
    for path in matched(profile, settings.file_set):
        document, reason = read_json(path, schema)
        value = document.get(settings.field) if not reason and isinstance(document, dict) else None
        if isinstance(value, int | float):
            rows.append({"finished": path.name, "seconds": value * UNIT_SECONDS[settings.unit]})
    return pd.DataFrame(rows, columns=["finished", "seconds"])


def _describe(seconds: float) -> str:
    return humanfriendly.format_timespan(seconds, max_units=2)


def ratios(profile: Profile, window_hours: float = 24 * 30) -> list[Metric]:
    """Per declared duration, the latest run's time as a multiple of the expected time;
    the table lists the recent runs (log sources within the window)."""
    metrics = []
    for name, settings in profile.durations.items():
        runs = (
            _from_logs(profile, settings, window_hours)
            if settings.log
            else _from_files(profile, settings)
        )
        if runs.empty:
            source = "logs" if settings.log else f"file set {settings.file_set}"
            metrics.append(Metric(None, f"{name}: no run found in the {source}", label=name))
            continue
        runs["x_expected"] = (runs["seconds"] / settings.expected).round(2)
        latest = runs.iloc[-1]
        median = runs["seconds"].iloc[:-1].median() if len(runs) > 1 else float("nan")
        usual = f", usually {_describe(median)}" if median == median else ""
        metrics.append(
            Metric(
                float(latest["x_expected"]),
                f"{name}: the latest run took {_describe(latest['seconds'])}, "
                f"{latest['x_expected']:g}x the expected {_describe(settings.expected)}{usual}",
                runs.tail(SHOWN_RUNS),
                label=name,
            )
        )
    return metrics
