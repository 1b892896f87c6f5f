"""Which indexes the SQLite database has (`.indexes`) and which of them the profile's
`benchmarks:` queries use: SQLite keeps no usage counters, so the plan of each everyday
query (EXPLAIN QUERY PLAN) is what tells an index in use from a full table scan."""

from __future__ import annotations

import re

import pandas as pd
import sqlalchemy as sa

from opslib.probes import Metric, db
from opslib.probes.benchmark import query_times
from opslib.profiles import Profile

# `SCAN spots` reads every row; `SCAN spots USING COVERING INDEX x` and `SEARCH` do not
FULL_SCAN = re.compile(r"^SCAN (?!.*\bINDEX\b)")
USES = re.compile(r"\bINDEX (\S+)")


def _indexes(connection: sa.Connection) -> list[dict]:
    rows = connection.execute(
        sa.text("SELECT name, tbl_name FROM sqlite_master WHERE type = 'index' ORDER BY name")
    ).all()
    found = []
    for name, table in rows:
        info = connection.execute(sa.text(f"PRAGMA index_info({db.quote(connection, name)})"))
        columns = ", ".join(str(row[2]) for row in info if row[2] is not None)
        found.append({"index": name, "table": table, "columns": columns, "used_by": ""})
    return found


def _plans(connection: sa.Connection, benchmarks: dict[str, str]) -> dict[str, list[str] | str]:
    """Each query's plan, one line per step; a query SQLite cannot plan has its error."""
    plans: dict[str, list[str] | str] = {}
    for name, sql in benchmarks.items():
        try:
            rows = connection.execute(sa.text(f"EXPLAIN QUERY PLAN {sql}")).all()
        except sa.exc.DBAPIError as exc:
            plans[name] = f"{name}: no plan ({str(exc.orig).splitlines()[0]})"
            continue
        plans[name] = [str(row[-1]) for row in rows]
    return plans


def usage(profile: Profile) -> list[Metric]:
    """Per benchmark query, the full table scans in its plan (0: every table it reads is
    reached through an index), with the plan as the summary; the table lists every index
    with the benchmark queries that use it."""
    metrics = []
    with db.connect(profile) as connection:
        indexes = _indexes(connection)
        by_name = {index["index"]: index for index in indexes}
        for name, plan in _plans(connection, profile.benchmarks).items():
            if isinstance(plan, str):
                metrics.append(Metric(None, plan, label=name))
                continue
            scans = sum(1 for step in plan if FULL_SCAN.match(step))
            for step in plan:
                for used in USES.findall(step):
                    if used in by_name:
                        by_name[used]["used_by"] = ", ".join(
                            filter(None, [by_name[used]["used_by"], name])
                        )
            metrics.append(Metric(scans, f"{name}: {'; '.join(plan)}", label=name))
    if metrics:
        metrics[-1].table = pd.DataFrame(indexes, columns=["index", "table", "columns", "used_by"])
    return metrics


READS = re.compile(r"^(?:SCAN|SEARCH) (\w+)")
TABLES = "SELECT name FROM sqlite_master WHERE type = 'table'"


def per_thousand(profile: Profile) -> list[Metric]:
    """The manual's "under 1 second per 1K records": each benchmark query's time per 1,000
    rows of the tables its plan reads (SQLite counts no rows examined, so a query that
    finds its rows through an index is measured against the whole table)."""
    metrics = []
    with db.connect(profile) as connection:
        plans = _plans(connection, profile.benchmarks)
        tables = {str(row[0]) for row in connection.execute(sa.text(TABLES)).all()}
        counted: dict[str, int] = {}
        for plan in plans.values():
            for step in plan if isinstance(plan, list) else []:
                read = READS.match(step)  # a table; not a subquery or a WITH name
                if read and read.group(1) in tables and read.group(1) not in counted:
                    table = db.quote(connection, read.group(1))
                    counted[read.group(1)] = connection.execute(
                        sa.text(f"SELECT count(*) FROM {table}")
                    ).scalar_one()
    for timed in query_times(profile):
        plan = plans.get(timed.label, [])
        if timed.value is None or isinstance(plan, str):
            metrics.append(Metric(None, plan if isinstance(plan, str) else timed.summary,
                                  label=timed.label))  # fmt: skip
            continue
        read = {m.group(1) for step in plan if (m := READS.match(step))}
        records = sum(counted.get(table, 0) for table in read)
        if not records:
            metrics.append(Metric(0, f"{timed.label}: reads no rows", label=timed.label))
            continue
        seconds = timed.value / (records / 1000)
        names = ", ".join(sorted(read & counted.keys()))
        summary = (
            f"{timed.label}: {seconds * 1000:.2f} ms per 1,000 records "
            f"({timed.value * 1000:.0f} ms over {records:,} rows of {names})"
        )
        metrics.append(Metric(seconds, summary, label=timed.label))
    return metrics
