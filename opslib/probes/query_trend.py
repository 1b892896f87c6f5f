"""The monthly benchmark comparison: each of the profile's `benchmarks:` queries timed
now against its time in the newest run at least a month ago, read back from the ledger."""

from __future__ import annotations

from datetime import timedelta

from opslib.clock import utc_now
from opslib.probes import History, Metric
from opslib.probes.benchmark import query_times
from opslib.profiles import Profile

TIMED = "query_time"


def slowdown(profile: Profile, history: History, days: float = 28) -> list[Metric]:
    """Each query's time now as a multiple of its time in a run `days` or more ago (2 is
    twice as slow). With no such run yet the time is shown and counts as the baseline
    (1x, OK): the first month sets it. A query that failed now stays UNKNOWN."""
    metrics = []
    for now in query_times(profile):
        if now.value is None:
            metrics.append(now)
            continue
        earlier = history.value_before(
            profile.name, f"{TIMED}[{now.label}]", utc_now() - timedelta(days=days)
        )
        took = f"{now.label}: {now.value * 1000:.0f} ms now"
        if earlier is None:
            summary = f"{took}; no run {days:g} days ago to compare with (the baseline)"
            metrics.append(Metric(1.0, summary, label=now.label))
            continue
        at, before = earlier
        ratio = now.value / before if before > 0 else float("inf")
        summary = f"{took}, {before * 1000:.0f} ms on {at:%Y-%m-%d} ({ratio:.1f}x)"
        metrics.append(Metric(ratio, summary, label=now.label, table=now.table))
    return metrics
