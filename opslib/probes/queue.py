"""The job queue, read through the profile's mapping with SQLAlchemy Core.

The same queries serve SQLite and PostgreSQL and every way a queue stores its facts:
states as one column with one or several values per role (integer codes too), or no
status column at all (the state follows from which timestamps are set); times as
`timestamptz`, `timestamp`, ISO text or unix epochs (see `probes.timestamps`); the queue
as a table or as a read-only query over several. Cut-offs are computed here in UTC and
written in each column's own representation, so no dialect-specific date arithmetic is
needed and an index on the column still serves. A query the database refuses because
the mapping names something that is not there is an UNKNOWN naming the profile key, never
"the database did not answer".
"""

from __future__ import annotations

import contextlib
import difflib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property

import pandas as pd
import sqlalchemy as sa

from opslib.clock import utc_now
from opslib.errors import ProfileError
from opslib.probes import MappingError, Metric, NotApplicable, ProbeError, db
from opslib.probes.timestamps import Encoding, declared, sampled
from opslib.profiles import Profile, Queue

ROLES = ("queued", "processing", "completed", "failed")
TIME_ROLES = ("created_at", "started_at", "finished_at", "updated_at", "failed_at")


@dataclass(frozen=True)
class QueueTable:
    """The profile's queue as SQLAlchemy columns, named by their role."""

    config: Queue

    @classmethod
    def of(cls, profile: Profile) -> QueueTable:
        if profile.queue is None:
            raise ProfileError(f"{profile.source}: no queue section")
        return cls(profile.queue)

    @cached_property
    def mapped(self) -> dict[str, str]:
        """role -> column name, for the roles the profile maps."""
        return self.config.columns.model_dump(exclude_none=True)

    @cached_property
    def table(self) -> sa.TableClause:
        """The queue table with its mapped columns (a queue given as a query has none)."""
        if self.config.table is None:
            raise NotApplicable("the queue is a read-only query (queue.query): nothing to change")
        schema, _, name = self.config.table.rpartition(".")
        columns = [sa.column(column) for column in dict.fromkeys(self.mapped.values())]
        return sa.table(name, *columns, schema=schema or None)

    @cached_property
    def source(self) -> sa.FromClause:
        """What the probes read from: the table, or the profile's query as a subquery."""
        if self.config.query is None:
            return self.table
        columns = [sa.column(column) for column in dict.fromkeys(self.mapped.values())]
        return sa.text(self.config.query).columns(*columns).subquery("queue")

    def column(self, role: str) -> sa.ColumnElement:
        if not self.has(role):
            raise ProbeError(f"queue.columns.{role} is not mapped: this cannot be measured")
        return self.source.c[self.mapped[role]]

    def has(self, role: str) -> bool:
        return role in self.mapped

    def finished(self) -> sa.ColumnElement:
        """finished_at. Unmapped, the queue keeps nothing once a job is done (graphile-
        worker, Laravel and goqite delete it): what finished cannot be counted, and that
        is UNKNOWN, never a throughput of 0 or a failure rate of failures alone."""
        if not self.has("finished_at"):
            raise ProbeError(
                "queue.columns.finished_at is not mapped: the queue does not keep finished "
                "jobs (or when they finished), so what finished cannot be counted"
            )
        return self.column("finished_at")

    def state(self, role: str) -> sa.ColumnElement[bool]:
        """The rows in state `role`: by the status column's values, or, without one, by
        which timestamps (and error) are set. A set `failed_at` ends a job as failed too,
        so a failure that leaves finished_at empty is neither waiting nor a success."""
        if self.has("status"):
            values = getattr(self.config.statuses, role)
            return self.column("status").in_([_untyped(value) for value in values])
        started = self.column("started_at")
        ends = [self.column(end) for end in ("finished_at", "failed_at") if self.has(end)]
        unfinished = [end.is_(None) for end in ends]
        if role == "queued":
            return sa.and_(started.is_(None), *unfinished)
        if role == "processing":
            return sa.and_(started.is_not(None), *unfinished)
        finished = self.column("finished_at").is_not(None)
        error = [self.column("error")] if self.has("error") else []
        failed_at = [self.column("failed_at")] if self.has("failed_at") else []
        if role == "completed":
            return sa.and_(finished, *[column.is_(None) for column in error + failed_at])
        if not error and not failed_at:
            raise ProbeError(
                "the queue has no status column and neither queue.columns.error nor "
                "queue.columns.failed_at: failed jobs cannot be told from completed ones"
            )
        failures = [sa.and_(finished, column.is_not(None)) for column in error]
        return sa.or_(*failures, *[column.is_not(None) for column in failed_at])

    def state_label(self) -> sa.ColumnElement:
        """Each row's state as stored (the status value) or as derived (a role's name)."""
        if self.has("status"):
            return self.column("status")
        cases = [(self.state(role), role) for role in ("queued", "processing")]
        return sa.case(*cases, else_=sa.null()).label("state")

    def outcome(self) -> sa.ColumnElement:
        """`failed` or `completed` for a finished row, by the mapping's rules."""
        return sa.case((self.state("failed"), "failed"), else_="completed").label("outcome")

    def encoding(self, connection: sa.Connection, role: str) -> Encoding:
        """How the `role` column stores times. A column with no value yet (no job has
        failed, none has reported progress) is read as its sibling time columns are
        written: a bound in a guessed encoding would compare epochs with timestamps."""
        samples = (
            sampled(connection, self.source, self.mapped[other], f"queue.columns.{other}")
            for other in (role, *TIME_ROLES)
            if self.has(other)
        )
        found = next((sample for sample in samples if sample is not None), None)
        return declared(self.config.timestamps, found, f"queue.columns.{role}")

    def since(self, connection: sa.Connection, role: str, moment: datetime) -> sa.ColumnElement:
        """`role` at or after `moment` (naive UTC), compared in the column's own encoding."""
        return self.column(role) >= self.encoding(connection, role).bound(moment)

    def ended_since(self, connection: sa.Connection, moment: datetime) -> sa.ColumnElement[bool]:
        """A job that ended (completed or failed) ended at or after `moment`: by
        finished_at, except that a failed job is timed by `failed_at` where the table
        records its end there (Oban's discarded jobs have no completed_at), and by
        finished_at where a failure left failed_at empty."""
        if not self.has("failed_at"):
            return self.since(connection, "finished_at", moment)
        finished_since = self.since(connection, "finished_at", moment)
        failed_since = sa.or_(
            self.since(connection, "failed_at", moment),
            sa.and_(self.column("failed_at").is_(None), finished_since),
        )
        return sa.or_(
            sa.and_(self.state("completed"), finished_since),
            sa.and_(self.state("failed"), failed_since),
        )

    def stuck_condition(self, connection: sa.Connection, now: datetime) -> sa.ColumnElement[bool]:
        """Processing with no progress since now − stuck_after: the rule a reset re-checks.
        Progress is `updated_at` where the table records it (its start where that is empty)."""
        cutoff = now - timedelta(seconds=self.config.stuck_after)
        started = self.column("started_at")
        started_before = started < self.encoding(connection, "started_at").bound(cutoff)
        if not self.has("updated_at"):
            return sa.and_(self.state("processing"), started_before)
        updated = self.column("updated_at")
        updated_before = updated < self.encoding(connection, "updated_at").bound(cutoff)
        no_progress = sa.or_(updated_before, sa.and_(updated.is_(None), started_before))
        return sa.and_(self.state("processing"), no_progress)

    @contextlib.contextmanager
    def reading(self, profile: Profile) -> Iterator[sa.Connection]:
        """A connection for queue queries; a query the database refuses for a name the
        mapping gives is re-raised naming the profile key that holds it."""
        try:
            with db.connect(profile) as connection:
                yield connection
        except MappingError as error:
            raise self.explained(profile, error) from None

    def explained(self, profile: Profile, error: ProbeError) -> ProbeError:
        """Which key of the mapping names a table or column that is not there."""
        if self.config.table is None:
            return ProbeError(f"queue.query: {error.reason}")
        schema, _, name = self.config.table.rpartition(".")
        try:
            with db.connect(profile) as connection:
                inspector = sa.inspect(connection)
                tables = inspector.get_table_names(schema=schema or None)
                if name not in tables:
                    return ProbeError(
                        f"queue.table: no table {self.config.table}{closest(name, tables)}"
                    )
                present = [column["name"] for column in inspector.get_columns(name, schema or None)]
        except (ProbeError, sa.exc.SQLAlchemyError):
            return ProbeError(f"queue: {error.reason}")
        missing = [
            f"queue.columns.{role}: {self.config.table} has no column {column!r}"
            f"{closest(column, present)}"
            for role, column in self.mapped.items()
            if column not in present
        ]
        return ProbeError("; ".join(missing) if missing else f"queue: {error.reason}")


def _untyped(value: str | int) -> sa.BindParameter:
    """A status value bound without a SQL type. SQLAlchemy's psycopg dialect casts a typed
    one (`$1::VARCHAR`), and PostgreSQL has no `enum = varchar`: the enum status columns
    of pg-boss, Oban and procrastinate refused every queue query. Untyped, the server
    reads the value as the column's own type, whatever it is."""
    return sa.bindparam(None, value, type_=sa.types.NullType())


def closest(name: str, known: list[str]) -> str:
    """ " (did you mean x?)" for the known name closest to a mistyped one, or nothing."""
    close = difflib.get_close_matches(name, known, n=1)
    return f" (did you mean {close[0]}?)" if close else ""


def _frame(connection: sa.Connection, query: sa.Select) -> pd.DataFrame:
    result = connection.execute(query)
    return pd.DataFrame(result.fetchall(), columns=list(result.keys()))


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
        counts = _frame(connection, query)
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
        rows = _frame(connection, query)
        read = [queue.encoding(connection, role).read(rows[f"_{role}"]) for role in moments]
    last = queue.mapped[moments[0]]
    rows = rows.drop(columns=[f"_{role}" for role in moments])
    if rows.empty:
        return pd.DataFrame(columns=[*rows.columns, last, "age_min"])
    rows[last] = read[0].fillna(read[-1])
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
        return _frame(connection, query)


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
        rows = _frame(connection, query)
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
