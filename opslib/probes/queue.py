"""The job queue, read through the profile's schema mapping with SQLAlchemy Core.

The same queries serve SQLite and PostgreSQL: times are compared with cut-offs computed
here in UTC, so no dialect-specific date arithmetic is needed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property

import pandas as pd
import sqlalchemy as sa

from opslib.clock import utc_now
from opslib.errors import ProfileError
from opslib.probes import Metric, db
from opslib.profiles import Profile, Queue


@dataclass(frozen=True)
class QueueTable:
    """The profile's queue table as SQLAlchemy columns, named by their role."""

    config: Queue

    @classmethod
    def of(cls, profile: Profile) -> QueueTable:
        if profile.queue is None:
            raise ProfileError(f"{profile.source}: no queue section")
        return cls(profile.queue)

    @cached_property
    def table(self) -> sa.TableClause:
        """The mapped columns only; timestamps typed so SQLite compares them correctly."""
        mapped = self.config.columns.model_dump(exclude_none=True)
        return sa.table(
            self.config.table,
            *(
                sa.column(name, sa.DateTime() if role.endswith("_at") else None)
                for role, name in mapped.items()
            ),
        )

    def column(self, role: str) -> sa.ColumnClause:
        return self.table.c[getattr(self.config.columns, role)]

    def has(self, role: str) -> bool:
        return getattr(self.config.columns, role) is not None

    @property
    def progress(self) -> sa.ColumnElement:
        """When a job last moved: its `updated_at` where the table has one (its start
        where that is empty), else its start."""
        started = self.column("started_at")
        if not self.has("updated_at"):
            return started
        return sa.func.coalesce(self.column("updated_at"), started)

    def stuck_condition(self, now: datetime) -> sa.ColumnElement[bool]:
        """Processing with no progress since now − stuck_after: the rule a reset re-checks."""
        cutoff = now - timedelta(seconds=self.config.stuck_after)
        return sa.and_(
            self.column("status") == self.config.statuses.processing, self.progress < cutoff
        )


def depth(profile: Profile) -> Metric:
    """Queued + processing jobs, by stage. Only the waiting statuses are counted, so the
    (status, started_at) index answers it at any table size (finished jobs are history)."""
    queue = QueueTable.of(profile)
    keys = [queue.column("stage")] if queue.has("stage") else []
    status = queue.column("status")
    statuses = queue.config.statuses
    query = (
        sa.select(*keys, status, sa.func.count().label("jobs"))
        .where(status.in_([statuses.queued, statuses.processing]))
        .group_by(*keys, status)
    )
    with db.connect(profile) as connection:
        counts = pd.DataFrame(connection.execute(query).mappings().all())
    if counts.empty:
        return Metric(0, "no job is queued or processing")
    waiting = int(counts["jobs"].sum())
    index = keys[0].name if keys else None
    table = (
        counts.pivot_table(
            index=index, columns=status.name, values="jobs", fill_value=0, aggfunc="sum"
        )
        if index
        else counts.set_index(status.name).T
    )
    return Metric(waiting, f"{waiting} job(s) queued or processing", table)


def stuck_job_rows(profile: Profile, now: datetime | None = None) -> pd.DataFrame:
    """Ids, stage and age of the jobs the stuck rule matches, oldest first."""
    queue = QueueTable.of(profile)
    now = now or utc_now()
    columns = [queue.column("id")] + ([queue.column("stage")] if queue.has("stage") else [])
    started = queue.progress.label(
        queue.config.columns.updated_at or queue.config.columns.started_at
    )
    query = (
        sa.select(*columns, started)
        .select_from(queue.table)
        .where(queue.stuck_condition(now))
        .order_by(started)
    )
    with db.connect(profile) as connection:
        rows = pd.DataFrame(connection.execute(query).mappings().all())
    if rows.empty:
        return pd.DataFrame(columns=[c.name for c in columns] + [started.name, "age_min"])
    rows["age_min"] = ((now - pd.to_datetime(rows[started.name])).dt.total_seconds() / 60).round(1)
    return rows


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


def _hour_edges(window_hours: float) -> list[datetime]:
    """Hour boundaries of the window, oldest first, ending with the current hour's start."""
    current = utc_now().replace(minute=0, second=0, microsecond=0)
    return [current - timedelta(hours=offset) for offset in range(int(window_hours) - 1, -1, -1)]


def _finished_counts(profile: Profile, window_hours: float, by_hour: bool = False) -> pd.DataFrame:
    """Jobs finished in the window counted in SQL, by status (and by hour when asked):
    no rows travel to Python, so the cost follows the index, not the window's size."""
    queue = QueueTable.of(profile)
    finished, status = queue.column("finished_at"), queue.column("status")
    statuses = queue.config.statuses
    groups: list[sa.ColumnElement] = [status]
    if by_hour:
        # Hour buckets from cut-offs computed here: the same SQL on SQLite and PostgreSQL.
        edges = list(enumerate(_hour_edges(window_hours)))
        groups.append(
            sa.case(*[(finished >= edge, index) for index, edge in reversed(edges)], else_=-1)
        )
    query = (
        sa.select(*groups, sa.func.count())
        .where(finished >= utc_now() - timedelta(hours=window_hours))
        .where(status.in_([statuses.completed, statuses.failed]))
        .group_by(*groups)
    )
    with db.connect(profile) as connection:
        rows = connection.execute(query).fetchall()
    return pd.DataFrame(rows, columns=["status", "hour", "jobs"] if by_hour else ["status", "jobs"])


def failure_rate(profile: Profile, window_hours: float = 24) -> Metric:
    """Percentage of jobs finished in the window that failed."""
    counts = _finished_counts(profile, window_hours).set_index("status")["jobs"]
    total = int(counts.sum())
    if total == 0:
        return Metric(0.0, f"no job finished in the last {window_hours:g} h")
    failed = int(counts.get(QueueTable.of(profile).config.statuses.failed, 0))
    rate = 100.0 * failed / total
    return Metric(
        rate,
        f"{failed} of {total} job(s) finished in the last {window_hours:g} h failed ({rate:.1f}%)",
    )


def throughput(profile: Profile, window_hours: float = 24) -> Metric:
    """Jobs completed in the window; the table has one row per hour, empty hours included."""
    counts = _finished_counts(profile, window_hours, by_hour=True)
    completed = counts[counts["status"] == QueueTable.of(profile).config.statuses.completed]
    edges = _hour_edges(window_hours)
    per_hour = completed.groupby("hour")["jobs"].sum().reindex(range(len(edges)), fill_value=0)
    table = pd.DataFrame(
        {"completed": per_hour.to_numpy()}, index=pd.DatetimeIndex(edges, name="hour (UTC)")
    )
    total = int(completed["jobs"].sum())
    return Metric(total, f"{total} job(s) completed in the last {window_hours:g} h", table)


def processing_time(profile: Profile, window_hours: float = 24) -> Metric:
    """95th percentile of start-to-finish time of the jobs completed in the window, with
    the mean, median and maximum beside it."""
    queue = QueueTable.of(profile)
    started, finished = queue.column("started_at"), queue.column("finished_at")
    query = (
        sa.select(started, finished)
        .where(queue.column("status") == queue.config.statuses.completed)
        .where(finished >= utc_now() - timedelta(hours=window_hours), started.is_not(None))
    )
    with db.connect(profile) as connection:
        rows = pd.DataFrame(connection.execute(query).fetchall(), columns=["started", "finished"])
    if rows.empty:
        return Metric(0.0, f"no job completed in the last {window_hours:g} h")
    seconds = (
        pd.to_datetime(rows["finished"]) - pd.to_datetime(rows["started"])
    ).dt.total_seconds()
    table = seconds.describe(percentiles=[0.5, 0.95]).rename("seconds").to_frame().round(1)
    p95 = float(seconds.quantile(0.95))
    return Metric(
        p95,
        f"{len(seconds)} job(s) in the last {window_hours:g} h: mean {seconds.mean() / 60:.1f} min, "
        f"95th percentile {p95 / 60:.1f} min",
        table,
    )
