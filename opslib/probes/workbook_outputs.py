"""The outputs of a pipeline of spreadsheet files: room for them, one sound output per
input, what the batch's reports said, and how long each file took against its history."""

from __future__ import annotations

import re
import shutil
import time
from collections import deque
from datetime import UTC, datetime, timedelta
from pathlib import Path

import humanfriendly
import pandas as pd

from opslib.clock import utc_now
from opslib.probes import Metric, NotApplicable, ProbeError
from opslib.probes.durations import against_expected, timed_runs
from opslib.probes.files import matched
from opslib.probes.workbooks import Contents, cached_workbook, input_files, read_inputs
from opslib.profiles import Profile
from opslib.status import Status

# what can be wrong with an output, in the order it is looked for (the labels of the
# output_files check in the catalogue)
OUTPUT_PROBLEMS = ("missing", "small", "stale", "unreadable", "rows")
COVERAGE = re.compile(r"coverage[^\n%]*?([\d.]+)\s*%", re.I)
ERROR_LINE = re.compile(r"\berror\b", re.I)
# the comprehensive report's columns no rule maps, and the performance report's timing
UNMAPPED = re.compile(r"unmapped columns?\s*:\s*(\S[^\n]*)", re.I)
TOTAL_TIME = re.compile(r"total processing time\s*:\s*([\d.]+\s*[a-z]*)", re.I)
SLOWEST = re.compile(r"slowest file\s*:\s*(\S[^\n]*)", re.I)


def output_space(profile: Profile) -> Metric:
    """Free space where outputs go, as a multiple of what this batch's outputs should
    take (the inputs' size times `output_size_factor`)."""
    workbooks, _locks = input_files(profile)
    expected = profile.workbooks.output_size_factor * sum(path.stat().st_size for path in workbooks)
    folder = profile.output_folder()
    free = shutil.disk_usage(folder if folder.exists() else folder.parent).free
    ratio = free / expected if expected else float("inf")
    size = humanfriendly.format_size
    return Metric(
        round(ratio, 1) if expected else None,
        f"{size(free)} free for about {size(expected)} of outputs ({ratio:.0f}x)"
        if expected
        else f"{size(free)} free; no input to size the outputs by",
        verdict=None if expected else Status.OK,
    )


def output_path(profile: Profile, source: Path) -> Path:
    return profile.output_folder() / profile.workbooks.output_name.format(stem=source.stem)


def _output_row(profile: Profile, source: Contents) -> dict:
    output = output_path(profile, source.path)
    row = {"input": source.path.name, "output": output.name, "size_kb": None,
           "rows_in": source.rows, "rows_out": None, "problem": ""}  # fmt: skip
    if not output.exists():
        row["problem"] = "missing"
        return row
    status = output.stat()
    row["size_kb"] = round(status.st_size / 1000, 1)
    produced = cached_workbook(output, {}, None)
    row["rows_out"] = produced.rows
    if produced.problem:
        row["problem"] = "unreadable"
    elif status.st_size < profile.workbooks.min_output_size:
        row["problem"] = "small"
    elif source.rows is not None and produced.rows != source.rows:
        row["problem"] = "rows"
    elif status.st_mtime < source.path.stat().st_mtime:
        row["problem"] = "stale"
    return row


def output_table(profile: Profile) -> pd.DataFrame:
    """One row per input: its expected output, size, rows in and out, and what is wrong
    (missing, small, stale, unreadable, rows; the first that applies)."""
    return pd.DataFrame([_output_row(profile, source) for source in read_inputs(profile)])


_EXPLAINED = {
    "missing": "no output",
    "small": "output under {floor}",
    "stale": "output older than its input",
    "unreadable": "output not a readable workbook",
    "rows": "output rows differ from the input's",
}


def outputs(profile: Profile) -> list[Metric]:
    """Inputs without a sound output, one result per kind of problem; the first carries
    the whole table."""
    table = output_table(profile)
    floor = humanfriendly.format_size(profile.workbooks.min_output_size)
    metrics = []
    for kind in OUTPUT_PROBLEMS:
        hit = table[table["problem"] == kind]
        what = _EXPLAINED[kind].format(floor=floor)
        summary = (
            f"{len(hit)} input(s) with {what}: {', '.join(hit['input'][:5])}"
            if len(hit)
            else f"no input with {what}"
        )
        metrics.append(Metric(len(hit), summary, label=kind))
    metrics[0].table = table.set_index("input")
    return metrics


def failed_inputs(profile: Profile) -> pd.DataFrame:
    """The rows of `output_table` whose output is not sound."""
    table = output_table(profile)
    return table[table["problem"] != ""]


def _read_report(text: str) -> dict:
    """What a batch report says, as far as the manual asks: error lines, the mapping
    coverage and the columns left unmapped (comprehensive report), the batch's time and
    its slowest file (performance report)."""
    errors = [line.strip() for line in text.splitlines() if ERROR_LINE.search(line)]
    coverage = [float(value) for value in COVERAGE.findall(text)]
    unmapped = ", ".join(match.strip() for match in UNMAPPED.findall(text))
    timing = "; ".join(
        f"{label} {match.group(1).strip()}"
        for label, pattern in (("total", TOTAL_TIME), ("slowest", SLOWEST))
        if (match := pattern.search(text))
    )
    low = [f"coverage {value:g}%" for value in coverage if value < 100]
    if unmapped:
        low = [f"{', '.join(low) or 'unmapped'} (unmapped columns: {unmapped})"]
    return {
        "errors": len(errors),
        "coverage": f"{min(coverage):g}%" if coverage else "",
        "unmapped_columns": unmapped,
        "timing": timing,
        "looks_off": "; ".join(errors[:2] + low),
    }


def batch_reports(profile: Profile, window_hours: float = 24) -> Metric:
    """The reports the latest batch wrote (modified in the window): error lines, a mapping
    coverage under 100 % with the columns left unmapped, and the batch's timing."""
    name = profile.workbooks.reports
    if name is None:
        raise ProbeError("the profile names no reports file set")
    since = time.time() - window_hours * 3600
    rows = []
    for path in matched(profile, name):
        status = path.stat()
        if status.st_mtime < since:
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        modified = datetime.fromtimestamp(int(status.st_mtime), UTC).replace(tzinfo=None)
        rows.append({"report": path.name, "modified": modified, **_read_report(text)})
    if not rows:
        return Metric(0, f"no report written in the last {window_hours:g} h")
    table = pd.DataFrame(rows).set_index("report")
    off = table[table["looks_off"] != ""]
    summary = (
        f"{len(off)} of {len(table)} report(s) from the last {window_hours:g} h flag problems: "
        + "; ".join(f"{report}: {text}" for report, text in off["looks_off"].head(3).items())
        if len(off)
        else f"{len(table)} report(s) from the last {window_hours:g} h, none flags a problem"
    )
    return Metric(len(off), summary, table)


def processing_ratio(profile: Profile, window_days: float = 30) -> list[Metric]:
    """Each file's latest processing time as a multiple of what its history says it
    should take (the median seconds per MB of its earlier runs times its size now, or
    the median of its earlier times): the manual's rule is to investigate past 2x."""
    since = utc_now() - timedelta(days=window_days)
    history = timed_runs(profile, profile.workbooks.processing_log, since)
    if history.empty:
        raise ProbeError(f"no processing time in the logs of the last {window_days:g} days")
    if "megabytes" not in history:  # the regex has no such group: times are not per size
        history["megabytes"] = float("nan")
    history["megabytes"] = pd.to_numeric(history["megabytes"], errors="coerce")
    metrics = []
    for name, runs in history.groupby("file", sort=True):
        latest, earlier = runs.iloc[-1], runs.iloc[:-1]
        if earlier.empty:
            metrics.append(Metric(None, f"{name}: one run only, no history to compare", label=name,
                                  verdict=Status.OK))  # fmt: skip
            continue
        sized = pd.notna(latest["megabytes"]) and earlier["megabytes"].gt(0).all()
        expected = (
            (earlier["seconds"] / earlier["megabytes"]).median() * latest["megabytes"]
            if sized
            else earlier["seconds"].median()
        )
        basis = f" from {len(earlier)} earlier run(s)" + (" of its size" if sized else "")
        metrics.append(against_expected(str(name), runs, expected, basis))
    return metrics


def batch_completion(profile: Profile, tail: int = 50) -> Metric:
    """Whether the last lines of the newest log of `workbooks.completion_log` say the run
    completed (the manual tails the processing log for it), with no file processed after
    that line (`workbooks.processing_log`): 0 when so, 1 when the run stopped part way or
    is still going."""
    settings = profile.workbooks
    if settings.completion_log is None or settings.completion_line is None:
        raise NotApplicable("the profile names no workbooks.completion_log and completion_line")
    logs = matched(profile, settings.completion_log)
    if not logs:
        raise ProbeError(f"no log matches {profile.file_glob(settings.completion_log)}")
    newest = logs[-1]
    with newest.open(encoding="utf-8", errors="replace") as handle:
        last = [line.strip() for line in deque(handle, maxlen=tail)]
    done = re.compile(settings.completion_line)
    work = re.compile(settings.processing_log) if settings.processing_log else None
    ends = [n for n, line in enumerate(last) if done.search(line)]
    after = [line for line in last[ends[-1] + 1 :] if work and work.search(line)] if ends else []
    if ends and not after:
        return Metric(0, f"{newest.name} ends with the run completed: {last[ends[-1]]}")
    why = (
        f"{len(after)} file(s) processed after its last completion line, the latest: {after[-1]}"
        if after
        else f"no line saying the run completed in its last {len(last)} line(s)"
    )
    return Metric(1, f"{newest.name}: {why} (the run stopped part way or is still going)")
