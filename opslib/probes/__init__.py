"""Probes: read-only measurements, one module per target kind.

A probe returns `Metric`s (a value, a one-line summary and optionally a table) or raises
`ProbeError` with the reason and the status the failure deserves. It never judges a
value against a threshold: that is the check's job.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from opslib.status import Status


@dataclass
class Metric:
    """One measurement. `label` tells apart several metrics of one check (a disk, a file).
    `verdict` is set when this one target failed outright (an endpoint that did not
    answer): the check reports that status for it instead of judging a value."""

    value: float | None
    summary: str
    table: pd.DataFrame | None = None
    label: str = ""
    verdict: Status | None = None


class ProbeError(Exception):
    """A measurement that could not be taken; `status` is what the check reports."""

    def __init__(self, reason: str, status: Status = Status.UNKNOWN) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


class TargetUnreachable(ProbeError):
    """The target did not answer (down, missing, locked): the pipeline cannot use it either."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason, Status.CRITICAL)
