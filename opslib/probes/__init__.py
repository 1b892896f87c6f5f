"""Probes: read-only measurements, one module per target kind.

A probe returns `Metric`s (a value, a one-line summary and optionally a table) or raises
`ProbeError` with the reason and the status the failure deserves. It never judges a
value against a threshold: that is the check's job.

A probe that reads what earlier runs recorded (growth since last week, the last restore)
is handed the run's `History` (`needs: [..., history]` in the catalogue): it measures the
ledger as a target, and never opens the archive itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from opslib.status import Status

if TYPE_CHECKING:  # a table is a DataFrame, but the log engine must not pay for pandas
    import pandas as pd


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


class NotApplicable(ProbeError):
    """The profile has nothing this step reads (a file set or a duration it does not
    declare): the step does not apply, which is neither a measurement nor a failure."""


class MappingError(ProbeError):
    """The target answered and refused the query: it names a table or column that is not
    there, or is not valid SQL for it. The mapping is wrong, not the target (UNKNOWN)."""


class TargetUnreachable(ProbeError):
    """The target did not answer (down, missing, locked): the pipeline cannot use it either."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason, Status.CRITICAL)


class History(Protocol):
    """What earlier runs recorded, as a probe reads it (the ledger implements it)."""

    def value_before(
        self, profile: str, check: str, before: datetime
    ) -> tuple[datetime, float] | None: ...

    def applied_changes(
        self, action: str, profile: str
    ) -> list[tuple[datetime, list[dict[str, Any]]]]: ...

    def history(
        self, runbook: str | None = None, profile: str | None = None, limit: int = 20
    ) -> list[dict]: ...


class NoHistory:
    """The history of an archive nothing has been recorded in yet."""

    def value_before(self, profile: str, check: str, before: datetime) -> None:
        return None

    def applied_changes(self, action: str, profile: str) -> list:
        return []

    def history(
        self, runbook: str | None = None, profile: str | None = None, limit: int = 20
    ) -> list:
        return []
