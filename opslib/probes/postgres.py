"""PostgreSQL server health: connections, transactions left open (idle or not), sessions
idle in a transaction, long-running queries and blocking chains, read from
pg_stat_activity, pg_locks and pg_blocking_pids().

The SQL is at the top, where it can be checked against the server's documentation. Every
query runs on a read-only connection with the profile's statement and lock timeouts
(`opslib.probes.db`) and leaves out only the session it runs in (`pg_backend_pid()`):
a session that calls itself `opslib` is still someone's session.
"""

from __future__ import annotations

import pandas as pd

from opslib.probes import Metric, db
from opslib.profiles import Profile

CONNECTIONS_SQL = """
SELECT coalesce(state, 'background') AS state, count(*) AS sessions
FROM pg_stat_activity
GROUP BY 1
ORDER BY 2 DESC
"""

CONNECTION_LIMIT_SQL = """
SELECT current_setting('max_connections')::int
     - current_setting('superuser_reserved_connections')::int AS usable
"""

IDLE_IN_TRANSACTION_SQL = """
SELECT pid, usename AS "user", application_name AS application,
       round(extract(epoch FROM now() - state_change)::numeric, 1) AS idle_s,
       left(query, 200) AS last_query
FROM pg_stat_activity
WHERE state IN ('idle in transaction', 'idle in transaction (aborted)')
  AND pid <> pg_backend_pid()
  AND now() - state_change > make_interval(secs => :older_than_s)
ORDER BY state_change
"""

LONG_QUERIES_SQL = """
SELECT pid, usename AS "user", round(extract(epoch FROM now() - query_start)::numeric, 1) AS running_s,
       left(query, 200) AS query
FROM pg_stat_activity
WHERE state = 'active' AND pid <> pg_backend_pid()
  AND now() - query_start > make_interval(secs => :older_than_s)
ORDER BY query_start
"""

# Every open transaction, whatever its state: one that keeps working for an hour holds its
# locks and keeps vacuum from removing dead rows ("N are dead but not yet removable") as
# surely as one left idle (check_postgres's txn_time).
OPEN_TRANSACTIONS_SQL = """
SELECT activity.pid, activity.usename AS "user", activity.application_name AS application,
       activity.state,
       round(extract(epoch FROM now() - activity.xact_start)::numeric, 1) AS open_s,
       (activity.backend_xmin IS NOT NULL OR activity.backend_xid IS NOT NULL) AS holds_back_vacuum,
       (SELECT string_agg(DISTINCT held.relation::regclass::text || ' ' || held.mode, ', ')
          FROM pg_locks AS held
         WHERE held.pid = activity.pid AND held.granted AND held.relation IS NOT NULL
           AND held.relation::regclass::text NOT LIKE 'pg\\_%') AS holds,
       left(activity.query, 200) AS last_query
FROM pg_stat_activity AS activity
WHERE activity.xact_start IS NOT NULL AND activity.pid <> pg_backend_pid()
  AND activity.backend_type = 'client backend'
ORDER BY activity.xact_start
"""

BLOCKING_SQL = """
SELECT blocked.pid AS blocked_pid,
       left(blocked.query, 200) AS blocked_query,
       blocker.pid AS blocker_pid,
       blocker.usename AS blocker_user,
       blocker.state AS blocker_state,
       left(blocker.query, 200) AS blocker_query,
       waiting.mode AS wanted_lock,
       waiting.relation::regclass::text AS relation,
       round(extract(epoch FROM now() - blocked.query_start)::numeric, 1) AS waiting_s
FROM pg_stat_activity AS blocked
CROSS JOIN LATERAL unnest(pg_blocking_pids(blocked.pid)) AS blocking(pid)
JOIN pg_stat_activity AS blocker ON blocker.pid = blocking.pid
LEFT JOIN pg_locks AS waiting ON waiting.pid = blocked.pid AND NOT waiting.granted
ORDER BY waiting_s DESC
"""


def _frame(profile: Profile, sql: str, **params: float) -> pd.DataFrame:
    with db.connect(profile) as connection:
        return db.frame(connection, sql, **params)


def connections(profile: Profile) -> Metric:
    """Percent of the usable connection slots (max_connections minus the superuser
    reserve) in use, with sessions by state."""
    by_state = _frame(profile, CONNECTIONS_SQL)
    usable = int(_frame(profile, CONNECTION_LIMIT_SQL)["usable"].iloc[0])
    clients = by_state.loc[by_state["state"] != "background", "sessions"].sum()
    used_pct = 100.0 * float(clients) / usable
    return Metric(
        used_pct,
        f"{clients} of {usable} usable connections in use ({used_pct:.0f}%)",
        by_state.set_index("state"),
    )


def idle_sessions(profile: Profile, older_than_s: float) -> pd.DataFrame:
    """Sessions idle inside a transaction for longer than `older_than_s`, oldest first."""
    return _frame(profile, IDLE_IN_TRANSACTION_SQL, older_than_s=older_than_s)


def idle_in_transaction(profile: Profile, older_than_s: float = 60) -> Metric:
    """Sessions holding a transaction open without working: they keep locks and stop vacuum."""
    sessions = idle_sessions(profile, older_than_s)
    if sessions.empty:
        return Metric(0, f"no session idle in a transaction for more than {older_than_s:g} s")
    pids = ", ".join(str(pid) for pid in sessions["pid"])
    return Metric(
        len(sessions),
        f"{len(sessions)} session(s) idle in a transaction for more than {older_than_s:g} s: pid {pids}",
        sessions,
    )


def long_transactions(profile: Profile) -> Metric:
    """Seconds the oldest open transaction has been open, whatever it is doing, with
    every open transaction's session, state, locks and last statement."""
    open_now = _frame(profile, OPEN_TRANSACTIONS_SQL)
    if open_now.empty:
        return Metric(0.0, "no transaction is open", open_now)
    oldest = open_now.iloc[0]
    holds = f", holding {oldest['holds']}" if oldest["holds"] else ""
    return Metric(
        float(oldest["open_s"]),
        f"the oldest open transaction (pid {oldest['pid']}, {oldest['user']}, "
        f"{oldest['state']}) has been open {oldest['open_s']:g} s{holds}: {oldest['last_query']}",
        open_now,
    )


def long_queries(profile: Profile, older_than_s: float = 300) -> Metric:
    """Queries running for longer than `older_than_s`."""
    queries = _frame(profile, LONG_QUERIES_SQL, older_than_s=older_than_s)
    if queries.empty:
        return Metric(0, f"no query running for more than {older_than_s:g} s")
    return Metric(
        len(queries), f"{len(queries)} query(ies) running for more than {older_than_s:g} s", queries
    )


def blocking_chains(profile: Profile) -> pd.DataFrame:
    """One row per (blocked session, session blocking it), longest wait first."""
    return _frame(profile, BLOCKING_SQL)


def chain_heads(chains: pd.DataFrame) -> list[int]:
    """Pids at the head of the blocking chains: they block others and wait on nobody."""
    if chains.empty:
        return []
    return sorted(int(pid) for pid in set(chains["blocker_pid"]) - set(chains["blocked_pid"]))


def blocked_sessions(profile: Profile) -> Metric:
    """Sessions waiting on another session's lock, each with who blocks it and with what."""
    chains = blocking_chains(profile)
    if chains.empty:
        return Metric(0, "no session is waiting on a lock")
    first = chains.iloc[0]
    blocked = chains["blocked_pid"].nunique()
    return Metric(
        blocked,
        f"{blocked} session(s) blocked; longest wait {first['waiting_s']} s on pid "
        f"{first['blocker_pid']} ({first['blocker_state']}: {first['blocker_query']})",
        chains,
    )
