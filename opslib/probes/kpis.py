"""Figures the manual reads off the database: each of the profile's `kpis:` queries returns
one number (a count of spots, a revenue), shown and judged by the profile's thresholds.

Where `benchmarks:` times a query and `invariants:` counts the rows breaking a rule, a KPI
is the query's answer itself: "verify spot counts", "is the Direct Response revenue
there". A sum over no rows is NULL in SQL; it is read as 0, the figure a report would show.
Each query runs on a read-only connection under the statement timeout.
"""

from __future__ import annotations

import numbers

import pandas as pd
import sqlalchemy as sa

from opslib.probes import Metric, ProbeError, db
from opslib.profiles import Profile
from opslib.status import Status


def _number(rows: pd.DataFrame) -> float | None:
    """The one cell of a one-row, one-column answer as a number; None if it is not one."""
    if rows.shape != (1, 1):
        return None
    cell = rows.iat[0, 0]
    if cell is None or (isinstance(cell, float) and pd.isna(cell)):
        return 0.0
    if isinstance(cell, numbers.Number) and not isinstance(cell, bool):
        return float(cell)
    return None


def values(profile: Profile) -> list[Metric]:
    """One metric per KPI: the number its query returns."""
    metrics, rows = [], []
    with db.connect(profile) as connection:
        for name, query in profile.kpis.items():
            try:
                answer = db.frame(connection, query)
            except sa.exc.SQLAlchemyError as exc:
                connection.rollback()
                error = db.classify(exc)
                if error.status is Status.CRITICAL:  # the database, not this query, is broken
                    raise error from None
                metrics.append(
                    Metric(None, f"{name} could not be read: {error.reason}", label=name)
                )
                continue
            value = _number(answer)
            if value is None:
                metrics.append(
                    Metric(
                        None,
                        f"{name}: the query must return one number, it returned "
                        f"{answer.shape[0]} row(s) of {answer.shape[1]} column(s) (kpis.{name})",
                        label=name,
                    )
                )
                continue
            metrics.append(
                Metric(value, f"{name} = {value:,.2f}".rstrip("0").rstrip("."), label=name)
            )
            rows.append({"kpi": name, "value": value, "sql": query})
    if not metrics:
        raise ProbeError(f"{profile.source} defines no kpis")
    if rows:
        metrics[-1].table = pd.DataFrame(rows)
    return metrics
