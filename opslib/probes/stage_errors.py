"""Errors per stage: the share of each stage's own log lines at ERROR level or worse.

A pipeline whose stages each write a log (`stages.steps.<name>.log`) can be held to a
limit per stage, as the spots manual does (stage 1 without errors, stage 2 under 1 %):
one rate over all the logs would let a noisy stage hide behind a quiet one. The reading is
the log scanner's, each file in the format `targets.logs.format` names.
"""

from __future__ import annotations

from datetime import timedelta

import pandas as pd

from opslib.clock import utc_now
from opslib.probes import Metric, NotApplicable, ProbeError
from opslib.probes.logscan import AUTO, scan
from opslib.profiles import Profile


def rates(profile: Profile, window_hours: float = 24) -> list[Metric]:
    """Per stage with a log, errors per line of that log in the window; a stage whose log
    is missing or silent in the window has no rate (no value, and why)."""
    stages = profile.stages
    if stages is None or not any(step.log for step in stages.steps.values()):
        raise NotApplicable("no stage names its log (stages.steps.<name>.log)")
    logs = profile.targets.logs
    log_format = logs.format if logs else AUTO
    formats = tuple(logs.timestamp_formats) if logs else ()
    since = utc_now() - timedelta(hours=window_hours)
    metrics, rows = [], []
    for name in stages.steps:
        path = profile.stage_log(name)
        if path is None:
            continue
        if not path.exists():
            metrics.append(Metric(None, f"{name}: no log at {path}", label=name))
            continue
        found = scan([path], since, None, formats, log_format)
        if found.unrecognized:
            raise ProbeError(
                f"{path.name} is in no log format opslib knows: set targets.logs.format"
            )
        if found.lines == 0:
            metrics.append(
                Metric(
                    None,
                    f"{name}: no line in {path.name} in the last {window_hours:g} h "
                    "(the stage did not run): no rate to judge",
                    label=name,
                )
            )
            continue
        rate = 100.0 * found.errors / found.lines
        metrics.append(
            Metric(
                rate,
                f"{name}: {found.errors} error(s) in {found.lines} line(s) of {path.name} "
                f"in the last {window_hours:g} h ({rate:.1f}%)",
                label=name,
            )
        )
        rows.append({"stage": name, "lines": found.lines, "errors": found.errors, "log": str(path)})
    if metrics and rows:
        metrics[-1].table = pd.DataFrame(rows)
    return metrics


TAIL_BYTES = 64 * 1024


def log_tails(profile: Profile, lines: int = 5) -> pd.DataFrame:
    """The last `lines` lines each stage wrote to its log (the manual's `tail -f`): the
    last thing a stage did, its last progress line before a hang. Read from the file's end,
    never the whole file."""
    stages = profile.stages
    if stages is None or not any(step.log for step in stages.steps.values()):
        raise NotApplicable("no stage names its log (stages.steps.<name>.log)")
    rows = []
    for name in stages.steps:
        path = profile.stage_log(name)
        if path is None:
            continue
        try:
            with path.open("rb") as file:
                file.seek(max(0, path.stat().st_size - TAIL_BYTES))
                text = file.read().decode("utf-8", errors="replace")
        except FileNotFoundError:
            rows.append({"stage": name, "message": f"(no log at {path})"})
            continue
        rows.extend({"stage": name, **_split(line)} for line in text.splitlines()[-lines:])
    return pd.DataFrame(rows, columns=["stage", "time", "level", "message"])


def _split(line: str) -> dict[str, str]:
    """`time LEVEL message` into its parts (a table cell shows 50 characters); another
    shape of line stays whole, as the message."""
    parts = line.split(None, 2)
    if len(parts) == 3 and parts[1].isalpha() and parts[1].isupper():
        return dict(zip(("time", "level", "message"), parts, strict=True))
    return {"time": "", "level": "", "message": line}
