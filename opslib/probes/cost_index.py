"""Whether the costs table has an index leading with its time column: the video manual's
second key index (`idx_costs_recent`), by which the day's and the last hour's spend are read."""

from __future__ import annotations

import re

from opslib.probes import Metric, db
from opslib.probes.pg_maintenance import QUEUE_INDEXES_SQL
from opslib.profiles import Profile


def time_index(profile: Profile) -> Metric:
    """1 when no index of the costs table starts with its `at` column, with the statement
    that adds one; 0 names the index. The table lists the table's indexes and their scans."""
    costs = profile.costs
    table = costs.table.rsplit(".", 1)[-1]
    with db.connect(profile) as connection:
        indexes = db.frame(connection, QUEUE_INDEXES_SQL, table=table)
    pattern = re.compile(rf"\(\s*\"?{re.escape(costs.at)}\b")
    leading = [
        name
        for name, sql in zip(indexes["index"], indexes["definition"], strict=True)
        if pattern.search(sql)
    ]
    if leading:
        return Metric(
            0, f"{costs.table} has an index leading with {costs.at}: {leading[0]}", indexes
        )
    return Metric(
        1,
        f"missing index: {costs.table} has no index leading with {costs.at}; "
        f"CREATE INDEX CONCURRENTLY ON {costs.table} ({costs.at} DESC)",
        indexes if not indexes.empty else None,
    )
