"""Query timings: how long each of the profile's `benchmarks:` queries takes to answer."""

from __future__ import annotations

import time

import pandas as pd
import sqlalchemy as sa

from opslib.probes import Metric, ProbeError, db
from opslib.profiles import Profile
from opslib.status import Status


def query_times(profile: Profile) -> list[Metric]:
    """Seconds per benchmark query, each run to completion under the statement timeout.
    A query that fails or runs out of time has no value (UNKNOWN) and says why."""
    metrics = []
    timings = []
    for name, sql in profile.benchmarks.items():
        started = time.monotonic()
        try:
            with db.connect(profile) as connection:
                rows = len(connection.execute(sa.text(sql)).fetchall())
        except ProbeError as exc:
            if exc.status is Status.CRITICAL:  # the database, not this query, is broken
                raise
            metrics.append(Metric(None, f"{name}: {exc.reason}", label=name))
            timings.append({"query": name, "seconds": None, "rows": None, "sql": sql})
            continue
        elapsed = time.monotonic() - started
        metrics.append(
            Metric(elapsed, f"{name}: {elapsed * 1000:.0f} ms, {rows:,} row(s)", label=name)
        )
        timings.append({"query": name, "seconds": round(elapsed, 4), "rows": rows, "sql": sql})
    if metrics:
        metrics[-1].table = pd.DataFrame(timings)
    return metrics
