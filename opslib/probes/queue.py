"""The job queue's measurements: depth, stuck jobs, failure rate, throughput and
processing time, each counted in SQL through the profile's mapping (`queue_table`)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pandas as pd
import sqlalchemy as sa

from opslib.clock import utc_now
from opslib.probes import Metric, ProbeError, db
from opslib.probes.queue_table import QueueTable
from opslib.profiles import Profile


def depth(profile: Profile) -> Metric:
    """Queued + processing jobs, by stage and state. Only the waiting states are counted,
    so a (status, started_at) index answers it at any table size."""
    queue = QueueTable.of(profile)
    keys = [queue.column("stage")] if queue.has("stage") else []
    state = queue.state_label()
    query = (
        sa.select(*keys, state, sa.func.count().label("jobs"))
        .select_from(queue.source)
        .where(sa.or_(queue.state("queued"), queue.state("processing")))
        .group_by(*keys, state)
    )
    with queue.reading(profile) as connection:
        counts = db.frame(connection, query)
    if counts.empty:
        return Metric(0, "no job is queued or processing")
    waiting = int(counts["jobs"].sum())
    label = counts.columns[-2]
    index = keys[0].name if keys else None
    table = (
        counts.pivot_table(index=index, columns=label, values="jobs", fill_value=0, aggfunc="sum")
        if index
        else counts.set_index(label).T
    )
    return Metric(waiting, f"{waiting} job(s) queued or processing", table)


def stuck_job_rows(profile: Profile, now: datetime | None = None) -> pd.DataFrame:
    """Ids, stage, last progress and age of the jobs the stuck rule matches, oldest first.
    Progress is `updated_at` where set, else the start; each is read in its own encoding
    (the two columns need not store times alike)."""
    queue = QueueTable.of(profile)
    now = now or utc_now()
    columns = [queue.column("id")] + ([queue.column("stage")] if queue.has("stage") else [])
    moments = [role for role in ("updated_at", "started_at") if queue.has(role)]
    with queue.reading(profile) as connection:
        query = (
            sa.select(*columns, *[queue.column(role).label(f"_{role}") for role in moments])
            .select_from(queue.source)
            .where(queue.stuck_condition(connection, now))
        )
        rows = db.frame(connection, query)
        read = [queue.encoding(connection, role).read(rows[f"_{role}"]) for role in moments]
    last = queue.mapped[moments[0]]
    rows = rows.drop(columns=[f"_{role}" for role in moments])
    if rows.empty:
        return pd.DataFrame(columns=[*rows.columns, last, "age_min"])
    # one unit for both: a column read empty comes back in another datetime unit
    first, fallback = (times.astype("datetime64[us]") for times in (read[0], read[-1]))
    rows[last] = first.fillna(fallback)
    rows["age_min"] = ((now - rows[last]).dt.total_seconds() / 60).round(1)
    return rows.sort_values(last, kind="stable", ignore_index=True)


def stuck_jobs(profile: Profile) -> Metric:
    """Jobs processing for longer than `queue.stuck_after`, with their ids and ages."""
    rows = stuck_job_rows(profile)
    limit_min = profile.queue.stuck_after / 60 if profile.queue else 0
    if rows.empty:
        return Metric(0, f"no job has been processing for more than {limit_min:g} min")
    return Metric(
        len(rows),
        f"{len(rows)} job(s) processing for more than {limit_min:g} min "
        f"(oldest {rows['age_min'].max():g} min)",
        rows,
    )


def _window(window_hours: float) -> None:
    if not window_hours > 0:
        raise ProbeError(f"the window must be more than 0 hours, not {window_hours:g}")


def _hour_edges(window_hours: float) -> list[datetime]:
    """Hour boundaries of the window, oldest first, ending with the current hour's start."""
    current = utc_now().replace(minute=0, second=0, microsecond=0)
    return [current - timedelta(hours=offset) for offset in range(int(window_hours) - 1, -1, -1)]


def _finished_counts(profile: Profile, window_hours: float, by_hour: bool = False) -> pd.DataFrame:
    """Jobs finished in the window counted in SQL, by outcome (and by hour when asked):
    no rows travel to Python, so the cost follows the index, not the window's size."""
    _window(window_hours)
    queue = QueueTable.of(profile)
    queue.finished()  # said before connecting: no answer could change it
    outcome = queue.outcome()
    with queue.reading(profile) as connection:
        groups: list[sa.ColumnElement] = [outcome]
        if by_hour:
            edges = list(enumerate(_hour_edges(window_hours)))
            groups.append(
                sa.case(
                    *[
                        (queue.ended_since(connection, edge), index)
                        for index, edge in reversed(edges)
                    ],
                    else_=-1,
                ).label("hour")
            )
        query = (
            sa.select(*groups, sa.func.count().label("jobs"))
            .select_from(queue.source)
            .where(queue.ended_since(connection, utc_now() - timedelta(hours=window_hours)))
            .where(sa.or_(queue.state("completed"), queue.state("failed")))
            .group_by(*groups)
        )
        return db.frame(connection, query)


def failure_rate(profile: Profile, window_hours: float = 24) -> Metric:
    """Percentage of jobs finished in the window that failed; none finished is UNKNOWN:
    a rate of nothing is no measurement."""
    counts = _finished_counts(profile, window_hours).groupby("outcome")["jobs"].sum()
    total = int(counts.sum())
    if total == 0:
        raise ProbeError(f"no job finished in the last {window_hours:g} h: no rate to judge")
    failed = int(counts.get("failed", 0))
    rate = 100.0 * failed / total
    return Metric(
        rate,
        f"{failed} of {total} job(s) finished in the last {window_hours:g} h failed ({rate:.1f}%)",
    )


def throughput(profile: Profile, window_hours: float = 24) -> Metric:
    """Jobs completed in the window; the table has one row per hour, empty hours included."""
    counts = _finished_counts(profile, window_hours, by_hour=True)
    completed = counts[counts["outcome"] == "completed"]
    edges = _hour_edges(window_hours)
    per_hour = completed.groupby("hour")["jobs"].sum().reindex(range(len(edges)), fill_value=0)
    table = pd.DataFrame(
        {"completed": per_hour.to_numpy()}, index=pd.DatetimeIndex(edges, name="hour (UTC)")
    )
    total = int(completed["jobs"].sum())
    return Metric(total, f"{total} job(s) completed in the last {window_hours:g} h", table)


def processing_time(profile: Profile, window_hours: float = 24) -> Metric:
    """95th percentile of start-to-finish time of the jobs completed in the window, with
    the mean, median and maximum beside it. Completed jobs that kept no start (Solid
    Queue drops a job's claim when it finishes) are no measurement: UNKNOWN, not 0."""
    _window(window_hours)
    queue = QueueTable.of(profile)
    started, finished = queue.column("started_at"), queue.finished()
    with queue.reading(profile) as connection:
        query = (
            sa.select(started, finished)
            .select_from(queue.source)
            .where(queue.state("completed"))
            .where(
                queue.since(connection, "finished_at", utc_now() - timedelta(hours=window_hours))
            )
        )
        rows = db.frame(connection, query)
        began = queue.encoding(connection, "started_at").read(rows.iloc[:, 0])
        ended = queue.encoding(connection, "finished_at").read(rows.iloc[:, 1])
    if rows.empty:  # a time of nothing is no measurement
        raise ProbeError(f"no job completed in the last {window_hours:g} h: no time to measure")
    seconds = (ended - began).dt.total_seconds().dropna()
    if seconds.empty:
        raise ProbeError(
            f"{len(rows)} job(s) completed in the last {window_hours:g} h, none with a start "
            "(queue.columns.started_at is empty once a job is done): no time to measure"
        )
    table = seconds.describe(percentiles=[0.5, 0.95]).rename("seconds").to_frame().round(1)
    p95 = float(seconds.quantile(0.95))
    return Metric(
        p95,
        f"{len(seconds)} job(s) in the last {window_hours:g} h: mean {seconds.mean() / 60:.1f} min, "
        f"95th percentile {p95 / 60:.1f} min",
        table,
    )
