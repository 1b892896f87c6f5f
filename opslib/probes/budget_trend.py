"""Spend across budget cycles (the ideas manual's monthly budget trend): each of the last
cycles of the budget table with what it was allocated and what the costs table recorded
in it, so a cycle that burns faster than the one before shows at a glance."""

from __future__ import annotations

import pandas as pd
import sqlalchemy as sa

from opslib.clock import utc_now
from opslib.probes import Metric, ProbeError, db
from opslib.probes.costs import costs_table, spent_between
from opslib.probes.timestamps import encoding
from opslib.profiles import Profile


def cycles(profile: Profile, last: int = 6) -> Metric:
    """The `last` cycles begun by now, oldest first: allocated, spent, share used and
    spend per day (the running cycle's over the days it has had). The value is the
    running cycle's spend per day; the summary says how it compares with the cycle before."""
    if last < 1:
        raise ProbeError(f"last={last}: read at least one cycle")
    budget, now = profile.budget, utc_now()
    table = sa.table(
        budget.table,
        sa.column(budget.allocated),
        sa.column(budget.period_start),
        sa.column(budget.period_end),
    )
    start, end = table.c[budget.period_start], table.c[budget.period_end]
    costs = costs_table(profile)
    with db.connect(profile) as connection:
        starts = encoding(connection, table, budget.period_start, "auto", "budget.period_start")
        ends = encoding(connection, table, budget.period_end, "auto", "budget.period_end")
        periods = connection.execute(
            sa.select(start, sa.func.max(end), sa.func.sum(table.c[budget.allocated]))
            .where(start <= starts.bound(now))
            .group_by(start)
            .order_by(start.desc())
            .limit(last)
        ).all()
        rows = []
        for began, ended, allocated in reversed(periods):
            began, ended = starts.read_one(began), ends.read_one(ended)
            until = min(ended, now)
            spent = connection.execute(
                sa.select(sa.func.coalesce(sa.func.sum(costs.c[profile.costs.amount]), 0)).where(
                    spent_between(connection, profile, costs, began, until)
                )
            ).scalar_one()
            days = max((until - began).total_seconds() / 86400, 1 / 24)
            rows.append(
                {
                    "start": began,
                    "end": ended,
                    "allocated_usd": round(float(allocated), 2),
                    "spent_usd": round(float(spent), 2),
                    "usage_pct": round(100 * float(spent) / float(allocated), 1)
                    if allocated
                    else None,
                    "per_day_usd": round(float(spent) / days, 2),
                }
            )
    if not rows:
        raise ProbeError(f"no budget period in {budget.table} began by {now:%Y-%m-%d} UTC")
    table_out = pd.DataFrame(rows)
    current = rows[-1]
    said = (
        f"{len(rows)} cycle(s); the running one has spent ${current['spent_usd']:.2f} "
        f"of ${current['allocated_usd']:.2f}, ${current['per_day_usd']:.2f} a day"
    )
    if len(rows) < 2 or not rows[-2]["per_day_usd"]:
        return Metric(current["per_day_usd"], said + " (no earlier cycle to compare)", table_out)
    change = round(100 * (current["per_day_usd"] / rows[-2]["per_day_usd"] - 1), 1)
    return Metric(
        current["per_day_usd"],
        f"{said}, {change:+g}% on the cycle before (${rows[-2]['per_day_usd']:.2f} a day)",
        table_out,
    )
