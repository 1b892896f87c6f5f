"""Budget: spend in the current period against its allocation, per category and in total,
how fast it burns and when it runs out; per-item cost outliers; the circuit breaker.

The period is the budget table's row(s) whose [period_start, period_end) holds now; the
spend is the profile's `costs` table over that period. A category with spend but no
allocation is named, never divided by zero. `over_budget` says which budgets are spent
(what every resume of spending is checked against); `latest_period`, `next_start` and
`cycle_summary` are what starting a new cycle reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import pandas as pd
import sqlalchemy as sa

from opslib.clock import utc_now
from opslib.probes import Metric, ProbeError, db
from opslib.probes.costs import costs_table, spent_between
from opslib.probes.halt import control_value
from opslib.probes.timestamps import encoding
from opslib.profiles import Profile
from opslib.status import Status

TOTAL = "total"
# the smallest elapsed time a burn rate is computed over: a period an hour old has not
# burnt "24 times its spend a day"
MIN_ELAPSED = timedelta(hours=1)
BREAKER_STATES = {"closed": 0, "half-open": 1, "open": 2}


@dataclass(frozen=True)
class Period:
    start: datetime
    end: datetime
    allocated: pd.Series  # by category


def _budget_table(profile: Profile) -> sa.TableClause:
    budget = profile.budget
    return sa.table(
        budget.table,
        sa.column(budget.category),
        sa.column(budget.allocated),
        sa.column(budget.period_start),
        sa.column(budget.period_end),
    )


def current_period(connection: sa.Connection, profile: Profile, now: datetime) -> Period:
    """The allocations of the period holding `now`; none is a reason, not a zero budget."""
    budget, table = profile.budget, _budget_table(profile)
    start, end = table.c[budget.period_start], table.c[budget.period_end]
    starts = encoding(connection, table, budget.period_start, "auto", "budget.period_start")
    ends = encoding(connection, table, budget.period_end, "auto", "budget.period_end")
    rows = connection.execute(
        sa.select(table.c[budget.category], table.c[budget.allocated], start, end).where(
            start <= starts.bound(now), end > ends.bound(now)
        )
    ).all()
    if not rows:
        raise ProbeError(f"no budget period in {budget.table} covers {now:%Y-%m-%d %H:%M} UTC")
    allocated = pd.Series(
        {category: float(amount) for category, amount, _, _ in rows}, name="allocated_usd"
    )
    return Period(
        min(starts.read_one(row[2]) for row in rows),
        max(ends.read_one(row[3]) for row in rows),
        allocated,
    )


def latest_period(connection: sa.Connection, profile: Profile, now: datetime) -> Period:
    """The period that began last, at or before `now`, whether it has ended or not (the
    one a new cycle follows)."""
    budget, table = profile.budget, _budget_table(profile)
    start, end = table.c[budget.period_start], table.c[budget.period_end]
    starts = encoding(connection, table, budget.period_start, "auto", "budget.period_start")
    ends = encoding(connection, table, budget.period_end, "auto", "budget.period_end")
    latest = sa.select(sa.func.max(start)).where(start <= starts.bound(now)).scalar_subquery()
    rows = connection.execute(
        sa.select(table.c[budget.category], table.c[budget.allocated], start, end).where(
            start == latest
        )
    ).all()
    if not rows:
        raise ProbeError(f"no budget period in {budget.table} began by {now:%Y-%m-%d %H:%M} UTC")
    allocated = pd.Series({category: float(amount) for category, amount, _, _ in rows})
    return Period(
        starts.read_one(rows[0][2]), max(ends.read_one(row[3]) for row in rows), allocated
    )


def next_start(connection: sa.Connection, profile: Profile, after: datetime) -> datetime | None:
    """When the first period beginning after `after` begins (a cycle already started or
    planned), or None."""
    budget, table = profile.budget, _budget_table(profile)
    start = table.c[budget.period_start]
    starts = encoding(connection, table, budget.period_start, "auto", "budget.period_start")
    first = connection.execute(
        sa.select(sa.func.min(start)).where(start > starts.bound(after))
    ).scalar_one()
    return starts.read_one(first)


def cycle_summary(
    connection: sa.Connection, profile: Profile, period: Period, until: datetime
) -> pd.DataFrame:
    """What a cycle spent by `until`, per category: allocated, spent, percent of the
    allocation and the distinct items that spent it (what a closed cycle is archived as)."""
    spent = _spend_by_category(connection, profile, period.start, until, with_items=True)
    frame = pd.concat([period.allocated.rename("allocated_usd"), spent], axis=1)
    frame = frame.fillna({"allocated_usd": 0.0, "spent_usd": 0.0, "items": 0})
    frame.index.name = "category"
    frame["usage_pct"] = (100 * frame["spent_usd"] / frame["allocated_usd"]).where(
        frame["allocated_usd"] > 0
    )
    frame["items"] = frame["items"].astype(int)
    return frame.round({"spent_usd": 2, "usage_pct": 1})[
        ["allocated_usd", "spent_usd", "usage_pct", "items"]
    ]


def _spend_by_category(
    connection: sa.Connection,
    profile: Profile,
    start: datetime,
    end: datetime | None = None,
    *,
    with_items: bool = False,
) -> pd.DataFrame:
    """Spend per category from `start` (to `end`), and `with_items` the distinct items
    that spent it: only an archived cycle counts them, so a costs table without an item
    column still has its budget read."""
    costs, table = profile.costs, costs_table(profile)
    counted = [sa.func.count(sa.distinct(table.c[costs.item]))] if with_items else []
    rows = connection.execute(
        sa.select(table.c[costs.category], sa.func.sum(table.c[costs.amount]), *counted)
        .where(spent_between(connection, profile, table, start, end))
        .group_by(table.c[costs.category])
    ).all()
    columns = ["category", "spent_usd", "items"][: 2 + len(counted)]
    return pd.DataFrame(
        [(row[0], float(row[1]), *(int(n) for n in row[2:])) for row in rows], columns=columns
    ).set_index("category")


def _ledger(period: Period, spent: pd.DataFrame, now: datetime) -> pd.DataFrame:
    """Allocated, spent, remaining, usage, burn per day and projected exhaustion, by
    category and in total (the last row)."""
    frame = pd.concat([period.allocated, spent["spent_usd"]], axis=1).astype(float).fillna(0.0)
    frame.loc[TOTAL] = frame.sum()
    frame.index.name = "category"
    days = max(now - period.start, MIN_ELAPSED) / timedelta(days=1)
    frame["remaining_usd"] = frame["allocated_usd"] - frame["spent_usd"]
    frame["usage_pct"] = (100 * frame["spent_usd"] / frame["allocated_usd"]).where(
        frame["allocated_usd"] > 0
    )
    frame["burn_per_day"] = frame["spent_usd"] / days
    frame["runs_out"] = [
        _runs_out(row.remaining_usd, row.burn_per_day, now) for row in frame.itertuples()
    ]
    return frame.round({"remaining_usd": 2, "usage_pct": 1, "burn_per_day": 2})


def _runs_out(remaining: float, burn_per_day: float, now: datetime) -> datetime | None:
    if remaining <= 0:
        return now
    if burn_per_day <= 0:
        return None
    return (now + timedelta(days=remaining / burn_per_day)).replace(second=0, microsecond=0)


def _describe(name: str, row: pd.Series, period: Period, throttle_at: float) -> str:
    text = (
        f"{name}: ${row['spent_usd']:.2f} of ${row['allocated_usd']:.2f} spent "
        f"({row['usage_pct']:.1f}%) in the period {period.start:%Y-%m-%d} to {period.end:%Y-%m-%d}"
    )
    if row["usage_pct"] >= 100:
        return text + "; the budget is exhausted"
    if row["usage_pct"] >= throttle_at:
        text += f"; past the {throttle_at:g}% throttle level"
    runs_out = row["runs_out"]
    if runs_out is not None and runs_out < period.end:
        text += (
            f"; at ${row['burn_per_day']:.2f}/day it runs out {runs_out:%Y-%m-%d %H:%M}, "
            "before the period ends"
        )
    return text


def reading(profile: Profile) -> tuple[Period, pd.DataFrame]:
    """The current period and its ledger (allocated, spent, usage, burn, runs out, by
    category and in total): the one budget reading `usage` and `over_budget` share."""
    now = utc_now()
    with db.connect(profile) as connection:
        period = current_period(connection, profile, now)
        spent = _spend_by_category(connection, profile, period.start, now)
    return period, _ledger(period, spent, now)


def over_budget(profile: Profile) -> list[dict[str, object]]:
    """The budgets at or over 100 % of their allocation this period, worst first, each
    `{"category": "openai", "percent": 104.7}` (the total, too, as "total"); empty when
    every budget is under, and for a profile without a budget. A budget that cannot be
    read raises `ProbeError`: never "none over"."""
    if profile.budget is None or profile.costs is None:
        return []
    ledger = reading(profile)[1]
    spent = ledger[(ledger["allocated_usd"] > 0) & (ledger["spent_usd"] >= ledger["allocated_usd"])]
    percent = (100 * spent["spent_usd"] / spent["allocated_usd"]).round(1)
    return [
        {"category": str(category), "percent": float(value)}
        for category, value in percent.sort_values(ascending=False).items()
    ]


def usage(profile: Profile) -> list[Metric]:
    """Spend as a share of the allocation: the total first (its table is the whole budget
    with burn rates and projected exhaustion), then each category."""
    period, ledger = reading(profile)
    if ledger.loc[TOTAL, "allocated_usd"] <= 0:
        raise ProbeError(f"the period's allocations in {profile.budget.table} add up to $0")
    throttle_at = profile.budget.throttle_at
    ledger.attrs["throttle_at"] = throttle_at  # for the chart's mark
    metrics = [
        Metric(
            float(ledger.loc[TOTAL, "usage_pct"]),
            _describe(TOTAL, ledger.loc[TOTAL], period, throttle_at),
            ledger,
            label=TOTAL,
        )
    ]
    for category, row in ledger.drop(index=TOTAL).iterrows():
        if row["allocated_usd"] > 0:
            summary = _describe(str(category), row, period, throttle_at)
            metrics.append(Metric(float(row["usage_pct"]), summary, label=str(category)))
        elif row["spent_usd"] == 0:
            continue  # nothing allocated, nothing spent: nothing to say
        else:
            summary = f"{category}: ${row['spent_usd']:.2f} spent with no allocation this period"
            metrics.append(Metric(None, summary, label=str(category), verdict=Status.WARNING))
    return metrics


def cost_outliers(profile: Profile) -> Metric:
    """Items whose spend this period is more than `outlier_factor` times the median item
    of their category: a retry loop or an oversized input, found before the total shows it."""
    costs, table, factor = profile.costs, costs_table(profile), profile.budget.outlier_factor
    now = utc_now()
    with db.connect(profile) as connection:
        period = current_period(connection, profile, now)
        rows = connection.execute(
            sa.select(
                table.c[costs.item], table.c[costs.category], sa.func.sum(table.c[costs.amount])
            )
            .where(spent_between(connection, profile, table, period.start, now))
            .group_by(table.c[costs.item], table.c[costs.category])
        ).all()
    items = pd.DataFrame(rows, columns=["item", "category", "amount_usd"])
    if items.empty:
        return Metric(0, "no spend recorded this period")
    items["amount_usd"] = items["amount_usd"].astype(float)
    items["category_median"] = items.groupby("category")["amount_usd"].transform("median")
    items["times_median"] = (items["amount_usd"] / items["category_median"]).round(1)
    outliers = items[items["amount_usd"] > factor * items["category_median"]].sort_values(
        "times_median", ascending=False
    )
    if outliers.empty:
        return Metric(0, f"no item costs more than {factor:g}x its category's median")
    worst = outliers.iloc[0]
    return Metric(
        len(outliers),
        f"{len(outliers)} item(s) cost more than {factor:g}x their category's median; "
        f"worst: {worst['item']} at ${worst['amount_usd']:.2f} in {worst['category']} "
        f"({worst['times_median']}x)",
        outliers.set_index("item"),
    )


def circuit_breaker(profile: Profile) -> Metric:
    """The breaker that stops spending: 0 closed, 1 half-open (trying again), 2 open."""
    breaker = profile.budget.breaker
    with db.connect(profile) as connection:
        value, since = control_value(connection, breaker.table, breaker.key)
    if value is None:
        return Metric(0, f"circuit breaker closed (no {breaker.key} row: it never tripped)")
    state = value.strip().lower()
    if state not in BREAKER_STATES:
        raise ProbeError(
            f"{breaker.table}.{breaker.key} is {value!r}, not one of {', '.join(BREAKER_STATES)}"
        )
    when = f" since {since:%Y-%m-%d %H:%M} UTC" if since else ""
    return Metric(BREAKER_STATES[state], f"circuit breaker {state}{when}")
