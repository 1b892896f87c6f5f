"""What the queue-corpus tests share: the example profiles, times relative to now in each
project's own encoding, and the numbers a morning check reads off a queue.

Every test plants the same kind of story (queued, processing and fresh, stuck, failed
and succeeded inside the 24 h window, more of both outside it) in the project's real
tables (tests/corpus/*.sql) and compares what opslib measures with what was planted.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from opslib.actions import execute
from opslib.actions.queue import ResetStuckJobs
from opslib.context import RunContext
from opslib.probes import Metric, ProbeError
from opslib.probes import queue as probes
from opslib.profiles import Profile, load_profile

CORPUS = Path(__file__).resolve().parent / "corpus"
EXAMPLES = Path(__file__).resolve().parent.parent / "parameters" / "examples"

# what throughput, the failure rate and processing time are where finished jobs are deleted
NOT_KEPT = (
    "UNKNOWN: queue.columns.finished_at is not mapped: the queue does not keep finished "
    "jobs (or when they finished), so what finished cannot be counted"
)


def example(project: str) -> Profile:
    """The example profile of `project`, as a user would load it."""
    return load_profile(str(EXAMPLES / f"{project}.yaml"))


@dataclass(frozen=True)
class Moments:
    """Moments of one story, all counted back from the same now, in each encoding the
    corpus uses; None stays None (not set) and negative minutes are in the future."""

    now: datetime = field(default_factory=lambda: datetime.now(UTC))

    def ago(self, minutes: float | None) -> datetime | None:
        """An aware UTC time (`timestamptz`: pg-boss, procrastinate, graphile-worker)."""
        return None if minutes is None else self.now - timedelta(minutes=minutes)

    def utc(self, minutes: float | None) -> datetime | None:
        """UTC wall-clock time (`timestamp without time zone`: Oban, Solid Queue)."""
        moment = self.ago(minutes)
        return None if moment is None else moment.replace(tzinfo=None)

    def epoch(self, minutes: float | None) -> int | None:
        """Unix epoch seconds (Laravel's `jobs`)."""
        moment = self.ago(minutes)
        return None if moment is None else int(moment.timestamp())

    def iso(self, minutes: float) -> str:
        """Text as goqite writes it: `YYYY-MM-DDTHH:MM:SS.SSSZ`."""
        moment = self.now - timedelta(minutes=minutes)
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _value(probe: Callable[[Profile], Metric], profile: Profile) -> float | str | None:
    try:
        return probe(profile).value
    except ProbeError as error:
        return f"{error.status.name}: {error.reason}"


def measure(profile: Profile) -> dict[str, float | str | None]:
    """queue_depth, stuck_jobs, failure_rate (%), throughput and processing_time (95th
    percentile, s) over 24 h, as the checks read them; a measurement that cannot be taken
    is `STATUS: reason`."""
    return {
        "queue_depth": _value(probes.depth, profile),
        "stuck_jobs": _value(probes.stuck_jobs, profile),
        "failure_rate": _value(probes.failure_rate, profile),
        "throughput": _value(probes.throughput, profile),
        "processing_time": _value(probes.processing_time, profile),
    }


def stuck_ids(profile: Profile) -> set[object]:
    """The ids the stuck rule names (the table a stuck_jobs result shows)."""
    return set(probes.stuck_job_rows(profile)[profile.queue.columns.id])  # type: ignore[union-attr]


def reset_does_not_apply(profile: Profile) -> None:
    """A queue given as a query is read-only: a reset does not apply, even when asked for."""
    context = RunContext.current("stuck-pipeline", profile.name)
    outcome = execute(ResetStuckJobs(profile), context, lambda: pytest.fail("audited"), apply=True)
    assert outcome.mode == "not-applicable" and "read-only query" in outcome.message
    assert "read-only query" in outcome.plan.summary  # the reason the report's last line gives
