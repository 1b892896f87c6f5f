"""Spend: the most expensive items in a window (from the queue's cost column) and spend
by category (from the profile's `costs` table)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pandas as pd
import sqlalchemy as sa

from opslib.clock import utc_now
from opslib.probes import Metric, db
from opslib.probes.queue_table import QueueTable
from opslib.probes.timestamps import encoding
from opslib.profiles import Profile

TOP_ITEMS = 20


def max_item_cost(profile: Profile, window_hours: float = 24) -> Metric:
    """The highest per-item cost among items finished in the window; the table lists the
    most expensive ones, so the report shows which to look at."""
    queue = QueueTable.of(profile)
    # Items finished in the window: the cost is final then, and the completion index finds them.
    cost = queue.column("cost")
    columns = [queue.column("id")] + ([queue.column("stage")] if queue.has("stage") else [])
    with queue.reading(profile) as connection:
        query = (
            sa.select(*columns, queue.state_label(), cost)
            .select_from(queue.source)
            .where(
                queue.since(connection, "finished_at", utc_now() - timedelta(hours=window_hours))
            )
            .where(cost.is_not(None))
            .order_by(cost.desc())
            .limit(TOP_ITEMS)
        )
        top = db.frame(connection, query)
    if top.empty:
        return Metric(0.0, f"no item with a cost in the last {window_hours:g} h")
    top[cost.name] = top[cost.name].astype(float)
    worst = top.iloc[0]
    return Metric(
        float(worst[cost.name]),
        f"most expensive item finished in the last {window_hours:g} h: {worst[queue.column('id').name]} at ${worst[cost.name]:.2f}",
        top,
    )


def costs_table(profile: Profile) -> sa.TableClause:
    """The profile's `costs` table with its mapped columns."""
    costs = profile.costs
    return sa.table(
        costs.table,
        sa.column(costs.item),
        sa.column(costs.category),
        sa.column(costs.amount),
        sa.column(costs.at),
    )


def spent_between(
    connection: sa.Connection,
    profile: Profile,
    table: sa.TableClause,
    start: datetime,
    end: datetime | None = None,
) -> sa.ColumnElement[bool]:
    """Costs recorded from `start` (to `end`), compared in the costs table's own encoding."""
    stamps = encoding(connection, table, profile.costs.at, "auto", "costs.at")
    at = table.c[profile.costs.at]
    window = [at >= stamps.bound(start)] + ([at <= stamps.bound(end)] if end else [])
    return sa.and_(*window)


def by_category(profile: Profile, window_hours: float = 24) -> Metric:
    """Total spend in the window, split by category."""
    costs, table = profile.costs, costs_table(profile)
    amount = sa.func.sum(table.c[costs.amount]).label("amount_usd")
    with db.connect(profile) as connection:
        start = utc_now() - timedelta(hours=window_hours)
        query = (
            sa.select(table.c[costs.category].label("category"), amount)
            .where(spent_between(connection, profile, table, start))
            .group_by(table.c[costs.category])
            .order_by(amount.desc())
        )
        spend = db.frame(connection, query)
    spend["amount_usd"] = spend["amount_usd"].astype(float)
    total = float(spend["amount_usd"].sum())
    return Metric(
        total, f"${total:.2f} spent in the last {window_hours:g} h", spend.set_index("category")
    )


def daily(profile: Profile, days: int = 7) -> Metric:
    """Spend since midnight UTC (the day a daily ceiling is counted over), with each of
    the last `days` days beside it, all in one scan of the window."""
    costs, table = profile.costs, costs_table(profile)
    today = utc_now().replace(hour=0, minute=0, second=0, microsecond=0)
    starts = [today - timedelta(days=back) for back in range(days - 1, -1, -1)]
    with db.connect(profile) as connection:
        stamps = encoding(connection, table, costs.at, "auto", "costs.at")
        at, amount = table.c[costs.at], table.c[costs.amount]

        def within(start: datetime) -> sa.ColumnElement[bool]:
            end = start + timedelta(days=1)
            return sa.and_(at >= stamps.bound(start), at < stamps.bound(end))

        columns = [
            column
            for index, start in enumerate(starts)
            for column in (
                sa.func.sum(sa.case((within(start), amount))).label(f"amount_{index}"),
                sa.func.count(sa.case((within(start), 1))).label(f"entries_{index}"),
            )
        ]
        query = sa.select(*columns).where(at >= stamps.bound(starts[0]))
        row = connection.execute(query).one()._mapping
    spend = pd.DataFrame(
        {
            "day": [start.date().isoformat() for start in starts],
            "amount_usd": [float(row[f"amount_{i}"] or 0) for i in range(len(starts))],
            "entries": [int(row[f"entries_{i}"]) for i in range(len(starts))],
        }
    ).set_index("day")
    spent = float(spend["amount_usd"].iloc[-1])
    earlier = spend["amount_usd"].iloc[:-1]
    usual = (
        f"; ${earlier.mean():.2f} a day over the {len(earlier)} days before" if len(earlier) else ""
    )
    return Metric(
        spent,
        f"${spent:.2f} spent today (since 00:00 UTC, {int(spend['entries'].iloc[-1])} entries){usual}",
        spend,
    )


def average_by_service(profile: Profile, window_hours: float = 1) -> list[Metric]:
    """Average cost per entry of each service (the costs table's category) over the
    window, with entries and total; one result per service, dearest first."""
    costs, table = profile.costs, costs_table(profile)
    amount = table.c[costs.amount]
    average = sa.func.avg(amount).label("avg_usd")
    with db.connect(profile) as connection:
        start = utc_now() - timedelta(hours=window_hours)
        query = (
            sa.select(
                table.c[costs.category].label("service"),
                average,
                sa.func.count().label("entries"),
                sa.func.sum(amount).label("total_usd"),
            )
            .where(spent_between(connection, profile, table, start))
            .group_by(table.c[costs.category])
            .order_by(average.desc())
        )
        services = db.frame(connection, query)
    if services.empty:
        # no entry is no average, not an average of zero: a cost recorder that stopped
        # writing must not read as cheap
        return [Metric(None, f"no cost recorded in the last {window_hours:g} h: no average")]
    services[["avg_usd", "total_usd"]] = services[["avg_usd", "total_usd"]].astype(float)
    services = services.set_index("service")
    return [
        Metric(
            float(row.avg_usd),
            f"{service}: ${row.avg_usd:.4f} per entry on average over {int(row.entries)} entries "
            f"in the last {window_hours:g} h (${row.total_usd:.2f} in all)",
            services if index == 0 else None,
            label=str(service),
        )
        for index, (service, row) in enumerate(services.iterrows())
    ]
