"""How big the pipeline's key tables are, and how much they grew since a run some days
ago, read back from the ledger: the weekly "is the database growing as expected"."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa

from opslib.clock import utc_now
from opslib.probes import History, Metric, db
from opslib.profiles import Profile

CHECK = "table_rows"
# PostgreSQL keeps an estimate that costs nothing; counting a large table does not
ESTIMATE_SQL = "SELECT reltuples::bigint FROM pg_class WHERE oid = to_regclass(:table)"


def _rows(connection: sa.Connection, table: str) -> int:
    if connection.dialect.name == "postgresql":
        estimate = connection.execute(sa.text(ESTIMATE_SQL), {"table": table}).scalar()
        if estimate is not None and estimate >= 0:
            return int(estimate)
    return connection.execute(
        sa.text(f"SELECT count(*) FROM {db.quote(connection, table)}")
    ).scalar_one()


def rows(profile: Profile, history: History, days: float = 7) -> list[Metric]:
    """Rows in each key table, with the growth since the newest run at least `days` ago
    that recorded it (none yet: the first run sets the baseline)."""
    metrics = []
    with db.connect(profile) as connection:
        for table in profile.key_tables():
            count = _rows(connection, table)
            earlier = history.value_before(
                profile.name, f"{CHECK}[{table}]", utc_now() - timedelta(days=days)
            )
            if earlier is None:
                growth = f"no run {days:g} days ago to compare with"
            else:
                at, before = earlier
                change = count - before
                share = f" ({100 * change / before:+.1f}%)" if before else ""
                growth = f"{change:+,.0f}{share} since {at:%Y-%m-%d}"
            metrics.append(Metric(count, f"{table}: {count:,} rows; {growth}", label=table))
    return metrics
