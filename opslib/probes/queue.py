"""The job queue, read through the profile's schema mapping with SQLAlchemy Core.

The same queries serve SQLite and PostgreSQL: times are compared with cut-offs computed
here in UTC, so no dialect-specific date arithmetic is needed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cached_property

import pandas as pd
import sqlalchemy as sa

from opslib import db
from opslib.errors import ProfileError
from opslib.probes import Metric
from opslib.profiles import Profile, Queue


def utc_now() -> datetime:
    """Naive UTC, the convention queue timestamps are stored in."""
    return datetime.now(UTC).replace(tzinfo=None)


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

    def stuck_condition(self, now: datetime) -> sa.ColumnElement[bool]:
        """Processing and started before now − stuck_after: the rule a reset re-checks."""
        cutoff = now - timedelta(seconds=self.config.stuck_after)
        return sa.and_(
            self.column("status") == self.config.statuses.processing,
            self.column("started_at") < cutoff,
        )


def depth(profile: Profile) -> Metric:
    """Queued + processing jobs; the table counts every status by stage."""
    queue = QueueTable.of(profile)
    keys = [queue.column("stage")] if queue.has("stage") else []
    status = queue.column("status")
    query = (
        sa.select(*keys, status, sa.func.count().label("jobs"))
        .select_from(queue.table)
        .group_by(*keys, status)
    )
    with db.connect(profile) as connection:
        counts = pd.DataFrame(connection.execute(query).mappings().all())
    statuses = queue.config.statuses
    if counts.empty:
        return Metric(0, "the queue table is empty")
    waiting = int(
        counts.loc[counts[status.name].isin([statuses.queued, statuses.processing]), "jobs"].sum()
    )
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
    started = queue.column("started_at")
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


def _finished_since(profile: Profile, window_hours: float) -> pd.DataFrame:
    queue = QueueTable.of(profile)
    finished = queue.column("finished_at")
    status = queue.column("status")
    statuses = queue.config.statuses
    query = (
        sa.select(status, finished)
        .select_from(queue.table)
        .where(finished >= utc_now() - timedelta(hours=window_hours))
        .where(status.in_([statuses.completed, statuses.failed]))
    )
    with db.connect(profile) as connection:
        rows = pd.DataFrame(
            connection.execute(query).mappings().all(), columns=[status.name, finished.name]
        )
    return rows.rename(columns={status.name: "status", finished.name: "finished_at"})


def failure_rate(profile: Profile, window_hours: float = 24) -> Metric:
    """Percentage of jobs finished in the window that failed."""
    rows = _finished_since(profile, window_hours)
    if rows.empty:
        return Metric(0.0, f"no job finished in the last {window_hours:g} h")
    failed = int((rows["status"] == QueueTable.of(profile).config.statuses.failed).sum())
    rate = 100.0 * failed / len(rows)
    return Metric(
        rate,
        f"{failed} of {len(rows)} job(s) finished in the last {window_hours:g} h failed ({rate:.1f}%)",
    )


def throughput(profile: Profile, window_hours: float = 24) -> Metric:
    """Jobs completed in the window; the table has one row per hour, empty hours included."""
    rows = _finished_since(profile, window_hours)
    completed = rows.loc[rows["status"] == QueueTable.of(profile).config.statuses.completed]
    end = pd.Timestamp(utc_now()).floor("h")
    hours = pd.date_range(end=end, periods=int(window_hours), freq="h")
    per_hour = (
        pd.to_datetime(completed["finished_at"])
        .dt.floor("h")
        .value_counts()
        .reindex(hours, fill_value=0)
    )
    table = per_hour.rename_axis("hour (UTC)").rename("completed").to_frame()
    return Metric(
        len(completed), f"{len(completed)} job(s) completed in the last {window_hours:g} h", table
    )


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
