"""The profile's queue mapping as SQL: which rows are in which state, and when a job
started, ended or last moved, for SQLite and PostgreSQL and every way a queue stores
its facts.

States are one column with one or several values per role (integer codes too), or no
status column at all (the state follows from which timestamps are set); times are
`timestamptz`, `timestamp`, ISO text or unix epochs (see `probes.timestamps`); the queue
is a table or a read-only query over several. Cut-offs are computed in UTC and written
in each column's own representation, so no dialect-specific date arithmetic is needed
and an index on the column still serves. A query the database refuses because the
mapping names something that is not there is an UNKNOWN naming the profile key, never
"the database did not answer".
"""

from __future__ import annotations

import contextlib
import difflib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property

import sqlalchemy as sa

from opslib.errors import ProfileError
from opslib.probes import MappingError, NotApplicable, ProbeError, db
from opslib.probes.timestamps import Encoding, declared, sampled
from opslib.profiles import Profile, Queue

ROLES = ("queued", "processing", "completed", "failed")
# the time columns, those a worker writes first: an empty one reads like the first of
# them that holds a value; created_at, often a database default, is the last resort
TIME_ROLES = ("started_at", "finished_at", "failed_at", "updated_at", "created_at")


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
        return sa.table(name, *self._columns(), schema=schema or None)

    @cached_property
    def source(self) -> sa.FromClause:
        """What the probes read from: the table, or the profile's query as a subquery."""
        if self.config.query is None:
            return self.table
        return sa.text(self.config.query).columns(*self._columns()).subquery("queue")

    def _columns(self) -> list[sa.ColumnClause]:
        return [sa.column(column) for column in dict.fromkeys(self.mapped.values())]

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
            return self.column("status").in_([untyped(value) for value in values])
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
        """How the `role` column stores times: as declared, else as a value of it shows.
        A column with no value yet (no job has failed, none has reported progress) reads
        like its siblings: a bound in a guessed encoding would compare epochs with
        timestamps."""
        own = self.sampled(connection, role)
        if own is None and self.config.timestamps == "auto":
            siblings = (self.sampled(connection, other) for other in TIME_ROLES if other != role)
            own = next((sample for sample in siblings if sample is not None), None)
        return declared(self.config.timestamps, own, f"queue.columns.{role}")

    def sampled(self, connection: sa.Connection, role: str) -> Encoding | None:
        """What a value of the `role` column shows (None when unmapped or holding none),
        read once per QueueTable: a probe writes a cut-off per hour of its window, and one
        query per column answers them all."""
        if not self.has(role):
            return None
        if role not in self._samples:
            key = f"queue.columns.{role}"
            self._samples[role] = sampled(connection, self.source, self.mapped[role], key)
        return self._samples[role]

    @cached_property
    def _samples(self) -> dict[str, Encoding | None]:
        return {}

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
        try:
            with db.connect(profile) as connection:
                wrong = self.missing(connection)
        except MissingTable as missing_table:
            return missing_table
        except (ProbeError, sa.exc.SQLAlchemyError):
            return ProbeError(f"queue: {error.reason}")
        return ProbeError("; ".join(wrong.values()) if wrong else f"queue: {error.reason}")

    def missing(self, connection: sa.Connection) -> dict[str, str]:
        """role -> what is wrong, for each mapped column the table (or query) does not
        have, with the closest it does; a table that is not there is MissingTable."""
        present = self._present(connection)
        return {
            role: f"queue.columns.{role}: {self.config.source} has no column {column!r}"
            f"{closest(column, present)}"
            for role, column in self.mapped.items()
            if column not in present
        }

    def _present(self, connection: sa.Connection) -> list[str]:
        """The columns the queue's table (or query) really has."""
        if self.config.table is None:
            query = sa.text(f"SELECT * FROM ({self.config.query}) AS q LIMIT 0")
            return list(connection.execute(query).keys())
        schema, _, name = self.config.table.rpartition(".")
        inspector = sa.inspect(connection)
        tables = inspector.get_table_names(schema=schema or None)
        if name not in tables:
            raise MissingTable(f"queue.table: no table {self.config.table}{closest(name, tables)}")
        return [column["name"] for column in inspector.get_columns(name, schema or None)]


class MissingTable(ProbeError):
    """queue.table names a table the database does not have."""


def untyped(value: object, *, expanding: bool = False) -> sa.BindParameter:
    """A value (or, `expanding`, a list for `IN`) bound without a SQL type. SQLAlchemy's
    psycopg dialect casts a typed one (`$1::VARCHAR`, `$1::INTEGER`), and PostgreSQL has
    no `enum = varchar`: the enum status columns of pg-boss, Oban and procrastinate refused
    every queue query, and a bigint id overflowed. Untyped, the server reads the value as
    the column's own type, whatever it is."""
    return sa.bindparam(None, value, expanding=expanding, type_=sa.types.NullType())


def closest(name: str, known: list[str]) -> str:
    """ " (did you mean x?)" for the known name closest to a mistyped one, or nothing."""
    close = difflib.get_close_matches(name, known, n=1)
    return f" (did you mean {close[0]}?)" if close else ""
