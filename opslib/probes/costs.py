"""Spend: the most expensive items in a window (from the queue's cost column) and spend
by category (from the profile's `costs` table)."""

from __future__ import annotations

from datetime import datetime, timedelta

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
