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

from opslib.probes import Metric, ProbeError, db
from opslib.profiles import Profile


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
    for name, answer in db.each_query(profile, profile.kpis):
        if isinstance(answer, str):
            metrics.append(Metric(None, f"{name} could not be read: {answer}", label=name))
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
        metrics.append(Metric(value, f"{name} = {value:,.2f}".rstrip("0").rstrip("."), label=name))
        rows.append({"kpi": name, "value": value, "sql": profile.kpis[name]})
    if not metrics:
        raise ProbeError(f"{profile.source} defines no kpis")
    if rows:
        metrics[-1].table = pd.DataFrame(rows)
    return metrics
