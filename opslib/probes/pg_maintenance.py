"""PostgreSQL upkeep: table sizes and dead tuples, vacuum and analyze ages, transaction-id
wraparound, index use on the queue table, and the heaviest statements.

The SQL is at the top; every query runs read-only under the profile's timeouts.
"""

from __future__ import annotations

import pandas as pd
import sqlalchemy as sa

from opslib.probes import Metric, NotApplicable, ProbeError, db
from opslib.probes.queue_table import QueueTable
from opslib.profiles import Profile

TABLES_SQL = """
SELECT relname AS "table",
       pg_total_relation_size(relid) AS total_bytes,
       n_live_tup AS live_rows,
       n_dead_tup AS dead_rows,
       round(100.0 * n_dead_tup / greatest(n_live_tup + n_dead_tup, 1), 1) AS dead_pct,
       n_tup_ins AS inserts, n_tup_upd AS updates, n_tup_del AS deletes,
       greatest(last_vacuum, last_autovacuum) AS last_vacuum,
       greatest(last_analyze, last_autoanalyze) AS last_analyze,
       seq_scan, coalesce(idx_scan, 0) AS idx_scan
FROM pg_stat_user_tables
ORDER BY pg_total_relation_size(relid) DESC
"""

WRAPAROUND_SQL = """
SELECT datname AS database, age(datfrozenxid) AS xid_age,
       round(100.0 * age(datfrozenxid) / 2147483647, 2) AS wraparound_pct
FROM pg_database ORDER BY age(datfrozenxid) DESC
"""

QUEUE_INDEXES_SQL = """
SELECT indexrelid::regclass::text AS index, idx_scan AS scans,
       pg_relation_size(indexrelid) AS bytes, pg_get_indexdef(indexrelid) AS definition
FROM pg_stat_user_indexes WHERE relname = :table
"""

# opslib's own reading of pg_stat_statements is left out of what it reports
STATEMENTS_SQL = """
SELECT calls, round(total_exec_time::numeric, 1) AS total_ms, round(mean_exec_time::numeric, 2) AS mean_ms,
       rows,
       round(100.0 * shared_blks_hit / nullif(shared_blks_hit + shared_blks_read, 0), 1)::float8
           AS hit_pct,
       shared_blks_read AS blocks_read, left(query, 200) AS query
FROM pg_stat_statements
WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND query NOT LIKE '%pg_stat_statements%'
ORDER BY {order} DESC LIMIT 10
"""
STATEMENT_ORDERS = {"total": "total_exec_time", "mean": "mean_exec_time"}

INDEX_USAGE_SQL = """
SELECT s.relname AS "table", s.indexrelname AS index, s.idx_scan AS scans,
       pg_relation_size(s.indexrelid) AS bytes, i.indisunique AS "unique"
FROM pg_stat_user_indexes s
JOIN pg_index i ON i.indexrelid = s.indexrelid
ORDER BY s.idx_scan, pg_relation_size(s.indexrelid) DESC
"""

# tables with no index at all are the likeliest to need one: all user tables are read
SEQUENTIAL_SQL = """
SELECT relname AS "table", seq_scan, seq_tup_read, coalesce(idx_scan, 0) AS idx_scan
FROM pg_stat_user_tables ORDER BY seq_tup_read DESC LIMIT 1
"""


def _statements_sql(order: str, server_version: int) -> str:
    sql = STATEMENTS_SQL.format(order=STATEMENT_ORDERS[order])
    if server_version >= 130000:
        return sql
    # PostgreSQL 12 and older name the timing columns total_time and mean_time
    return sql.replace("total_exec_time", "total_time").replace("mean_exec_time", "mean_time")


def dead_tuples(profile: Profile) -> Metric:
    """The highest share of dead rows in any table, with every table's size, upkeep and
    activity (rows inserted, updated and deleted since the statistics were reset)."""
    with db.connect(profile) as connection:
        tables = db.frame(connection, TABLES_SQL)
    if tables.empty:
        return Metric(0.0, "no user tables")
    worst = tables.sort_values("dead_pct", ascending=False).iloc[0]
    return Metric(
        float(worst["dead_pct"]),
        f"{worst['table']} has the most dead rows: {worst['dead_rows']} ({worst['dead_pct']}%), "
        f"last vacuumed {worst['last_vacuum'] or 'never'}",
        tables.set_index("table"),
    )


def wraparound(profile: Profile) -> Metric:
    """How far the oldest database is towards transaction-id wraparound (a forced shutdown)."""
    with db.connect(profile) as connection:
        databases = db.frame(connection, WRAPAROUND_SQL)
    worst = databases.iloc[0]
    return Metric(
        float(worst["wraparound_pct"]),
        f"{worst['database']} is {worst['xid_age']} transactions old ({worst['wraparound_pct']}% of the way)",
        databases.set_index("database"),
    )


def queue_index_use(profile: Profile) -> Metric:
    """Whether the queue table has an index leading with its status column; without one
    every stuck-job and depth query reads the whole table (value 1 = missing). The table
    lists each index with its size and scans, and the summary names unused ones."""
    queue = QueueTable.of(profile)
    table = queue.table.fullname  # a queue given as a query has no table: not applicable
    if not queue.has("status"):
        raise NotApplicable("the queue has no status column (queue.columns.status) to index")
    with db.connect(profile) as connection:
        indexes = db.frame(connection, QUEUE_INDEXES_SQL, table=table)
    status = queue.config.columns.status
    leading = (
        indexes["definition"].str.contains(rf"\(\s*{status}\b", regex=True)
        if not indexes.empty
        else []
    )
    if len(indexes) and any(leading):
        unused = indexes.loc[indexes["scans"] == 0, "index"].tolist()
        note = f"; never used since the statistics reset: {', '.join(unused)}" if unused else ""
        return Metric(0, f"{table} has an index leading with {status}{note}", indexes)
    return Metric(
        1,
        f"missing index: {table} has no index leading with {status}; "
        f"CREATE INDEX ON {table} ({status}, {queue.config.columns.started_at})",
        indexes if not indexes.empty else None,
    )


def read_statements(profile: Profile, by: str = "total") -> pd.DataFrame:
    """This database's ten heaviest statements in total or per call, from
    pg_stat_statements, with their cache hit share; a `ProbeError` saying how to load the
    extension where it is not."""
    if by not in STATEMENT_ORDERS:
        raise ProbeError(f"by={by!r}: order statements by one of {', '.join(STATEMENT_ORDERS)}")
    with db.connect(profile) as connection:
        installed = connection.execute(
            sa.text("SELECT count(*) FROM pg_extension WHERE extname = 'pg_stat_statements'")
        ).scalar_one()
        if not installed:
            raise ProbeError(
                "pg_stat_statements is not installed: add it to shared_preload_libraries and "
                "CREATE EXTENSION pg_stat_statements"
            )
        version = connection.execute(sa.text("SHOW server_version_num")).scalar_one()
        return db.frame(connection, _statements_sql(by, int(version)))


def top_statements(profile: Profile, by: str = "total") -> Metric:
    """The statements that used the most time in total (`by="total"`) or per call
    (`by="mean"`), from pg_stat_statements; the value is the top one's mean time. UNKNOWN
    when the extension is not loaded, with how to load it."""
    statements = read_statements(profile, by)
    if statements.empty:
        return Metric(0.0, "no statement recorded yet")
    top = statements.iloc[0]
    heaviest = "in total" if by == "total" else "per call"
    return Metric(
        float(top["mean_ms"]),
        f"heaviest {heaviest}: {top['mean_ms']} ms per call, {top['calls']} calls, "
        f"{top['total_ms']} ms in total: {' '.join(str(top['query']).split())[:120]}",
        statements,
    )


def index_usage(profile: Profile) -> Metric:
    """Indexes no query used since the statistics were reset (unique ones excepted: they
    enforce a constraint), and the table read most by sequential scans: an index to drop
    and one to add."""
    with db.connect(profile) as connection:
        indexes = db.frame(connection, INDEX_USAGE_SQL)
        scanned = db.frame(connection, SEQUENTIAL_SQL)
    unused = indexes[(indexes["scans"] == 0) & ~indexes["unique"]] if len(indexes) else indexes
    names = f": {', '.join(unused['index'])}" if len(unused) else ""
    most = (
        f"; most rows read by sequential scans: {scanned.iloc[0]['table']} "
        f"({scanned.iloc[0]['seq_tup_read']} rows in {scanned.iloc[0]['seq_scan']} scans, "
        f"{scanned.iloc[0]['idx_scan']} index scans)"
        if len(scanned)
        else ""
    )
    return Metric(
        len(unused),
        f"{len(unused)} index(es) unused since the statistics reset{names}{most}",
        indexes.set_index("index") if len(indexes) else None,
    )


def slowest_statements(profile: Profile) -> Metric:
    """The statements slowest per call (the manual's query-time KPI)."""
    return top_statements(profile, by="mean")
