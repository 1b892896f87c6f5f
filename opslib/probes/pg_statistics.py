"""PostgreSQL's own view of how well it reads (the ideas manual's database optimisation):
how much of each heavy statement's reading came from the buffer cache, and the planner's
column statistics (distinct values and physical order) that ANALYZE keeps. Read-only,
under the profile's timeouts."""

from __future__ import annotations

import sqlalchemy as sa

from opslib.probes import Metric, db
from opslib.probes.pg_maintenance import read_statements
from opslib.profiles import Profile

COLUMNS_SQL = """
SELECT s.schemaname AS schema, s.tablename AS "table", s.attname AS "column",
       s.n_distinct, round(s.correlation::numeric, 3)::float8 AS correlation
FROM pg_stats s
WHERE s.schemaname NOT IN ('pg_catalog', 'information_schema')
  AND s.schemaname NOT LIKE 'pg_toast%'
ORDER BY s.n_distinct DESC
"""

UNANALYZED_SQL = """
SELECT relname FROM pg_stat_user_tables
WHERE last_analyze IS NULL AND last_autoanalyze IS NULL ORDER BY relname
"""


def statement_cache(profile: Profile) -> Metric:
    """The five statements that used the most time, with the share of their blocks read
    from the cache; the value is the lowest share among them (a statement reading from
    disk). UNKNOWN without pg_stat_statements, with how to load it."""
    statements = read_statements(profile, "total").head(5).drop(columns="mean_ms")
    measured = statements.dropna(subset=["hit_pct"])
    if measured.empty:
        return Metric(None, "no recorded statement has read a block yet", statements)
    low = measured.loc[measured["hit_pct"].idxmin()]
    query = " ".join(str(low["query"]).split())[:120]
    return Metric(
        float(low["hit_pct"]),
        f"lowest cache hit share among the {len(statements)} heaviest statements: "
        f"{low['hit_pct']:g}% ({low['blocks_read']} block(s) read from disk): {query}",
        statements,
    )


def column_statistics(profile: Profile) -> Metric:
    """The planner's statistics per column (pg_stats: distinct values, correlation); the
    value is the number of user tables never analyzed, whose plans are guesses."""
    with db.connect(profile) as connection:
        columns = db.frame(connection, COLUMNS_SQL)
        unanalyzed = [row[0] for row in connection.execute(sa.text(UNANALYZED_SQL))]
    tables = columns["table"].nunique() if not columns.empty else 0
    summary = f"statistics for {len(columns)} column(s) of {tables} table(s)"
    if unanalyzed:
        summary += f"; never analyzed: {', '.join(unanalyzed)}"
    return Metric(len(unanalyzed), summary, columns)
