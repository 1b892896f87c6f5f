"""A run's outcome in the formats its readers take: lines for a person, a Nagios plugin
line, a JSON document and a Prometheus node-exporter textfile.

The functions read a `RunSummary`, not the runner's `RunOutcome`, so they stay
independent of the runner and can be fed from the ledger or a refused run as well as from a
fresh run. `finished_at` is naive UTC, as the runner and the ledger keep it.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Gauge, write_to_textfile

from opslib import paths
from opslib.checks import CheckResult, Threshold
from opslib.status import Status

# The units of measure the Nagios plugin guidelines allow, and the project's names for them;
# any other unit (`min`, `jobs`, `USD`) is left out and the value stays a plain number.
_NAGIOS_UOM = {uom: uom for uom in ("s", "us", "ms", "%", "B", "KB", "MB", "TB", "c")} | {
    "bytes": "B"
}
_PLAIN_LABEL = re.compile(r"\w+", re.ASCII)
_NUMBER = r"-?(?:\d+\.?\d*|\.\d+)"
_NAGIOS_RANGE = re.compile(rf"@?(?:(?:~|{_NUMBER})?:)?(?:{_NUMBER})?")
_FILE_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


@dataclass(frozen=True)
class RunSummary:
    """What every reader of a run's outcome is given."""

    runbook: str
    profile: str
    status: Status
    headline: str
    results: Sequence[CheckResult]
    duration_s: float
    finished_at: datetime  # naive UTC
    report: str | None = None  # where the HTML report is, as shown to a person
    notices: Sequence[str] = ()  # what the notifications did


def render(format_: str, run: RunSummary) -> str:
    """The outcome as `format_` prints it: `text`, `nagios` or `json`."""
    if format_ == "nagios":
        return nagios_line(run)
    if format_ == "json":
        return json_document(run)
    return "\n".join(text_lines(run))


def text_lines(run: RunSummary) -> list[str]:
    """For a person: the status and headline, each check that needs attention and each
    fix, where the report is, and what the notifications did."""
    return [
        f"{run.status.name} {run.runbook} on {run.profile}: {run.headline}",
        *(
            f"  {result.status.name:<8} {result.name}: {result.summary}"
            for result in run.results
            if result.status is not Status.OK or result.name.startswith("action:")
        ),
        f"report: {run.report or 'none (the run produced no notebook)'}",
        *run.notices,
    ]


def nagios_line(run: RunSummary) -> str:
    """One line of Nagios plugin output, `OPSLIB <STATUS> - <runbook> on <profile>: <headline>
    | <perfdata>`, so NRPE, Icinga or Naemon can run opslib as a plugin and graph its values."""
    text = _one_line(f"OPSLIB {run.status.name} - {run.runbook} on {run.profile}: {run.headline}")
    perfdata = " ".join(entry for entry in map(_perfdata, run.results) if entry)
    return f"{text} | {perfdata}" if perfdata else text


def json_document(run: RunSummary) -> str:
    """The outcome as one line of JSON, keys in a fixed order, for log shippers and scripts.

    NaN and infinity are written as null: `json.dumps` would otherwise emit `NaN`, which
    is not JSON and which most parsers refuse."""
    document = {
        "runbook": run.runbook,
        "profile": run.profile,
        "status": run.status.name,
        "exit_code": int(run.status),
        "headline": run.headline,
        "duration_s": _finite_or_none(run.duration_s),
        "finished_at": _as_utc(run.finished_at)
        .isoformat(timespec="seconds")
        .replace("+00:00", "Z"),
        "report": run.report,
        "results": [_result_record(result) for result in run.results],
    }
    return json.dumps(document, allow_nan=False)


def write_prometheus(directory: Path, run: RunSummary) -> Path:
    """Write the run's metrics for the node exporter's textfile collector and return the file.

    One file per runbook and profile, so each run replaces only its own metrics.
    `write_to_textfile` writes a temporary file beside it and renames it into place, so the
    collector never reads half a file."""
    registry = CollectorRegistry()
    run_labels = {"runbook": run.runbook, "profile": run.profile}
    check_status = Gauge(
        "opslib_check_status",
        "State of each check in the latest run: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.",
        ["runbook", "profile", "check"],
        registry=registry,
    )
    check_value = Gauge(
        "opslib_check_value",
        "Value each check measured in the latest run, in the unit its unit label names.",
        ["runbook", "profile", "check", "unit"],
        registry=registry,
    )
    for result in run.results:
        check_status.labels(**run_labels, check=result.name).set(int(result.status))
        value = _finite_or_none(result.value)
        if value is not None:
            check_value.labels(**run_labels, check=result.name, unit=result.unit or "").set(value)
    _run_gauge(
        registry,
        "opslib_run_status",
        "State of the latest run, its exit code: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.",
        run_labels,
        int(run.status),
    )
    _run_gauge(
        registry,
        "opslib_run_duration_seconds",
        "Wall-clock time the latest run took, in seconds.",
        run_labels,
        run.duration_s,
    )
    _run_gauge(
        registry,
        "opslib_last_run_timestamp_seconds",
        "Unix time at which the latest run finished.",
        run_labels,
        _as_utc(run.finished_at).timestamp(),
    )
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"opslib--{_file_part(run.runbook)}--{_file_part(run.profile)}.prom"
    write_to_textfile(str(path), registry)
    path.chmod(paths.SHARED_MODE)  # node_exporter reads it as its own user
    return path


def _run_gauge(
    registry: CollectorRegistry, name: str, help_text: str, labels: dict[str, str], value: float
) -> None:
    Gauge(name, help_text, list(labels), registry=registry).labels(**labels).set(value)


def _perfdata(result: CheckResult) -> str | None:
    """`'label'=value[UOM];[warn];[crit]`, trailing empty fields dropped; None without a
    finite value, which perfdata cannot carry.

    Written here rather than with `nagiosplugin.Performance`: that class refuses a `'` in a
    label instead of doubling it, and prints values with `%s`, so `1e-07` or `inf`, where
    the guidelines allow only `[-0-9.]`."""
    value = _finite_or_none(result.value)
    if value is None:
        return None
    fields = [
        f"{_decimal(value)}{_NAGIOS_UOM.get(result.unit, '')}",
        _perf_range(result.warning),
        _perf_range(result.critical),
    ]
    return f"{_perf_label(result.name)}={';'.join(fields).rstrip(';')}"


def _perf_label(name: str) -> str:
    """A perfdata label: `=` is never allowed in one, a `'` is written twice, and anything
    but letters, digits and `_` needs the quotes."""
    label = _one_line(name.replace("=", "_"))
    if _PLAIN_LABEL.fullmatch(label):
        return label
    return "'" + label.replace("'", "''") + "'"


def _perf_range(spec: str | None) -> str:
    """A threshold as a perfdata range: copied when it is a plain Nagios range, else its
    human units (`5 min`, `1 GB`) converted to the base units the value is in; empty when
    it is missing or unreadable, so one odd threshold never breaks the line."""
    text = (spec or "").strip()
    if not text:
        return ""
    if _NAGIOS_RANGE.fullmatch(text) and any(char.isdigit() for char in text):
        return text
    try:
        nagios_range = Threshold.parse(text).range
    except ValueError:
        return ""
    if nagios_range.start == -math.inf:
        start = "~:"
    else:
        start = "" if nagios_range.start == 0 else f"{_decimal(nagios_range.start)}:"
    end = "" if nagios_range.end == math.inf else _decimal(nagios_range.end)
    return f"{'@' if nagios_range.invert else ''}{start}{end}"


def _decimal(value: float) -> str:
    """A number in plain decimals (`0.0000001`, not `1e-07`), as perfdata requires."""
    return format(Decimal(repr(float(value))), "f").removesuffix(".0")


def _one_line(text: str) -> str:
    """Text for the plugin line: `|` starts the perfdata and a newline the long output,
    so the first becomes `/` and all whitespace runs become one space."""
    return " ".join(text.replace("|", "/").split())


def _result_record(result: CheckResult) -> dict[str, Any]:
    return {
        "name": result.name,
        "status": result.status.name,
        "value": _finite_or_none(result.value),
        "unit": result.unit,
        "warning": result.warning,
        "critical": result.critical,
        "summary": result.summary,
    }


def _finite_or_none(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _as_utc(moment: datetime) -> datetime:
    """An aware UTC time: `datetime.timestamp()` would read a naive time as local time."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _file_part(name: str) -> str:
    """A name safe inside a file name; profile and runbook names already are, a path is not."""
    return _FILE_NAME_UNSAFE.sub("_", name)
