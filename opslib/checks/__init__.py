"""Thresholds and check results: the evaluation step between probe and report.

A probe measures a value; a check judges it against the profile's warning and critical
thresholds, written as Nagios ranges (`80`, `10:`, `~:10`, `10:20`, `@10:20`) whose ends
may carry human units (`'5 min'`, `'95%'`, `'1 GB'`). A check never talks to a target.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import humanfriendly
import nagiosplugin

from opslib.status import Status
from opslib.units import parse_quantity


def _format_end(value: float) -> str:
    return "~" if value == -math.inf else repr(value)


@dataclass(frozen=True)
class Threshold:
    """A Nagios range with human units; `alerts(value)` is true outside the range
    (inside it when the range starts with `@`)."""

    spec: str
    range: nagiosplugin.Range = field(repr=False, compare=False)

    @classmethod
    def parse(cls, spec: str | float | int) -> Threshold:
        text = str(spec).strip()
        invert = text.startswith("@")
        body = text[1:] if invert else text
        if ":" in body:
            start_text, end_text = body.split(":", 1)
            start = parse_quantity(start_text) if start_text.strip() else 0.0
            end = parse_quantity(end_text) if end_text.strip() else math.inf
        else:
            start, end = 0.0, parse_quantity(body)
        normalized = f"{'@' if invert else ''}{_format_end(start)}:"
        if end != math.inf:
            normalized += _format_end(end)
        try:
            return cls(text, nagiosplugin.Range(normalized))
        except ValueError as exc:
            raise ValueError(f"threshold {text!r}: {exc}") from exc

    def alerts(self, value: float) -> bool:
        return not self.range.match(value)

    def __str__(self) -> str:
        return self.spec


@dataclass
class CheckResult:
    """One judged measurement, as the report and the ledger show it."""

    name: str
    status: Status
    value: float | None = None
    unit: str = ""
    warning: str | None = None
    critical: str | None = None
    summary: str = ""
    details: str = ""

    def to_record(self) -> dict[str, Any]:
        """A JSON-ready dict (status by name) for scrapbook and the ledger."""
        record = asdict(self)
        record["status"] = self.status.name
        return record

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> CheckResult:
        return cls(**{**record, "status": Status[record["status"]]})


def judge(
    value: float | None,
    warning: Threshold | None = None,
    critical: Threshold | None = None,
) -> Status:
    """The status of a value: critical is tested first; no value is UNKNOWN, never OK."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return Status.UNKNOWN
    if critical is not None and critical.alerts(value):
        return Status.CRITICAL
    if warning is not None and warning.alerts(value):
        return Status.WARNING
    return Status.OK


def format_value(value: float | None, unit: str) -> str:
    """A value as a person reads it: `2 h 5 min`, `1.2 GB`, `7.5%`, `3`."""
    if value is None:
        return "n/a"
    if unit == "s":
        return humanfriendly.format_timespan(value, max_units=2)
    if unit == "B":
        return humanfriendly.format_size(value)
    number = f"{value:.0f}" if float(value).is_integer() else f"{value:.2f}".rstrip("0")
    if unit == "%":
        return f"{number}%"
    return f"{number} {unit}".strip()
