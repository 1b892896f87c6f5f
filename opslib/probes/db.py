"""Database connections that cannot hang a probe or become the competing process.

SQLite is opened read-only through a URI (a probe can never create or lock the file for
writing) with a busy timeout, and every statement gets a deadline enforced by SQLite's
progress handler. PostgreSQL gets connect_timeout, statement_timeout and lock_timeout,
read-only transactions and `application_name=opslib`. Driver errors become `ProbeError`s
with a scrubbed, one-line reason.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.pool import NullPool

from opslib.probes import MappingError, ProbeError, TargetUnreachable
from opslib.profiles import Profile
from opslib.profiles.secrets import scrub
from opslib.status import Status

if TYPE_CHECKING:
    import psycopg

_PROGRESS_EVERY_OPS = 1000


@dataclass
class RunMemory:
    """What one run has learnt about its targets. `unreachable` maps a database or Redis
    URL to why it did not answer (None: remember nothing, ask again each time); `explain`
    may add to the reason of a database that did not answer (who holds its lock)."""

    unreachable: dict[str, str] | None = None
    explain: Callable[[Profile, TargetUnreachable], TargetUnreachable] | None = None

    def raise_if_unreachable(self, url: str, target: str) -> None:
        """Fail at once for a target that did not answer earlier in this run, so a dead
        server costs the run one timeout rather than one per check."""
        if self.unreachable is not None and url in self.unreachable:
            raise TargetUnreachable(
                f"not measured: {target} did not answer earlier in this run "
                f"({self.unreachable[url]})"
            )

    def remember(self, url: str, error: TargetUnreachable) -> TargetUnreachable:
        """`error`, its reason kept for `url` if this run remembers (the key is never shown)."""
        if self.unreachable is not None:
            self.unreachable[url] = error.reason
        return error


_run: ContextVar[RunMemory | None] = ContextVar("opslib_run_memory", default=None)


def run_memory() -> RunMemory:
    """The memory of the run under way; outside `remembering`, one that remembers nothing."""
    return _run.get() or RunMemory()


def engine(
    profile: Profile, *, readonly: bool = True, statement_timeout: float | None = None
) -> sa.Engine:
    """An engine for the profile's database with every timeout the profile sets
    (`statement_timeout` overrides the profile's for a probe with its own budget)."""
    target = profile.targets.database
    if target is None:
        raise ProbeError(f"{profile.source} has no targets.database")
    statement_s = statement_timeout or target.statement_timeout
    url = sa.make_url(profile.database_url())
    if url.get_backend_name() == "sqlite":
        return _sqlite_engine(url, readonly, target.connect_timeout, statement_s)
    if url.get_backend_name() == "postgresql":
        options = {
            "statement_timeout": int(statement_s * 1000),
            "lock_timeout": int(target.lock_timeout * 1000),
            "TimeZone": "UTC",
        }
        if readonly:
            options["default_transaction_read_only"] = "on"
        return sa.create_engine(
            url.set(drivername="postgresql+psycopg"),
            poolclass=NullPool,
            connect_args={
                "connect_timeout": max(1, round(target.connect_timeout)),
                "application_name": "opslib",
                "options": " ".join(f"-c {key}={value}" for key, value in options.items()),
            },
        )
    raise ProbeError(f"{profile.source}: unsupported database {url.get_backend_name()!r}")


def _sqlite_engine(
    url: sa.URL, readonly: bool, busy_timeout_s: float, statement_timeout_s: float
) -> sa.Engine:
    path = url.database or ""
    if readonly:
        url = url.set(database=f"file:{path}", query={"mode": "ro", "uri": "true"})
    created = sa.create_engine(url, poolclass=NullPool, connect_args={"timeout": busy_timeout_s})

    @event.listens_for(created, "connect")
    def _install_deadline(dbapi_connection, record) -> None:  # type: ignore[no-untyped-def]
        deadline = [float("inf")]
        dbapi_connection.set_progress_handler(
            lambda: time.monotonic() > deadline[0], _PROGRESS_EVERY_OPS
        )
        record.info["opslib_deadline"] = deadline

    @event.listens_for(created, "before_cursor_execute")
    def _arm_deadline(conn, *_args) -> None:  # type: ignore[no-untyped-def]
        conn.connection.info["opslib_deadline"][0] = time.monotonic() + statement_timeout_s

    if not readonly:
        # pysqlite would only BEGIN at the first write, letting the rows a change reads
        # drift before it writes them; BEGIN IMMEDIATE takes the write lock up front.
        @event.listens_for(created, "connect")
        def _manual_transactions(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
            dbapi_connection.isolation_level = None

        @event.listens_for(created, "begin")
        def _begin_immediate(conn) -> None:  # type: ignore[no-untyped-def]
            conn.exec_driver_sql("BEGIN IMMEDIATE")

    return created


def frame(connection: sa.Connection, query: sa.Executable | str, **params: object) -> pd.DataFrame:
    """The rows `query` returns (a statement, or SQL text with `:name` parameters) as a
    DataFrame with the query's column names, also when no row comes back."""
    statement = sa.text(query) if isinstance(query, str) else query
    result = connection.execute(statement, params)
    return pd.DataFrame(result.fetchall(), columns=list(result.keys()))


def quote(connection: sa.Connection, name: str) -> str:
    """An identifier from a profile (a table, a column) quoted for this connection's SQL."""
    return connection.dialect.identifier_preparer.quote(name)


_HOT_JOURNAL = (
    "a writer most likely died mid-transaction and left a hot journal, which only a "
    "read-write open (the next pipeline stage) rolls back; opslib only reads"
)


def _sqlite(error: sqlite3.Error, message: str) -> ProbeError:
    """By SQLite's own result code: busy, locked, missing and unreadable files are the
    target not answering; a damaged file is CRITICAL; SQLITE_ERROR (no such table or
    column, a syntax error) is the mapping's fault."""
    code = getattr(error, "sqlite_errorname", "")
    if code == "SQLITE_INTERRUPT":
        return ProbeError(f"query did not finish within its timeout ({message})")
    if code == "SQLITE_READONLY_ROLLBACK":
        return TargetUnreachable(f"{message}: {_HOT_JOURNAL}")
    if code.startswith(("SQLITE_NOTADB", "SQLITE_CORRUPT")):
        return ProbeError(f"database file is damaged: {message}", Status.CRITICAL)
    if code.startswith(("SQLITE_BUSY", "SQLITE_LOCKED", "SQLITE_CANTOPEN", "SQLITE_IOERR",
                        "SQLITE_PERM", "SQLITE_READONLY")):  # fmt: skip
        return TargetUnreachable(message)
    if code == "SQLITE_ERROR":
        return MappingError(message)
    return ProbeError(message)


def _postgres(error: psycopg.Error, message: str) -> ProbeError:
    """By the class of the server's SQLSTATE: a cancelled statement is a timeout, a
    refused name or type is the mapping's fault, a refused connection is the target."""
    import psycopg  # only a PostgreSQL target raises its errors: SQLite runs never load it

    errors = psycopg.errors
    if isinstance(error, errors.QueryCanceled | errors.LockNotAvailable):
        return ProbeError(f"query did not finish within its timeout ({message})")
    if isinstance(error, errors.InsufficientPrivilege):
        return ProbeError(f"not permitted: {message}")
    if isinstance(error, errors.InvalidCatalogName):  # the database itself does not exist
        return TargetUnreachable(message)
    if isinstance(error, psycopg.ProgrammingError | psycopg.DataError):
        return MappingError(message)
    if isinstance(error, psycopg.OperationalError):
        return TargetUnreachable(message)
    return ProbeError(message)


def classify(exc: Exception) -> ProbeError:
    """A driver error as the status it deserves, by its type and code, not its wording."""
    original = getattr(exc, "orig", None) or exc
    message = scrub((str(original).strip().splitlines() or [type(original).__name__])[0])
    if isinstance(original, sqlite3.Error):
        return _sqlite(original, message)
    if type(original).__module__.startswith("psycopg"):
        return _postgres(original, message)
    if isinstance(exc, sa.exc.OperationalError):
        return TargetUnreachable(message)
    return ProbeError(message)


@contextlib.contextmanager
def remembering(memory: RunMemory) -> Iterator[None]:
    """Inside this block a database or Redis that did not answer is not asked again: later
    probes fail at once with the first reason, so a locked SQLite file costs a run one busy
    timeout rather than one per check. The runbook keeps `memory` for its whole run."""
    token = _run.set(memory)
    try:
        yield
    finally:
        _run.reset(token)


@contextlib.contextmanager
def _classified(profile: Profile) -> Iterator[None]:
    url = profile.database_url()
    memory = run_memory()
    memory.raise_if_unreachable(url, "the database")
    try:
        yield
    except sa.exc.SQLAlchemyError as exc:
        error = classify(exc)
        if isinstance(error, TargetUnreachable):
            if memory.explain is not None:
                error = memory.explain(profile, error)
            memory.remember(url, error)
        raise error from None


@contextlib.contextmanager
def connect(
    profile: Profile, *, readonly: bool = True, statement_timeout: float | None = None
) -> Iterator[sa.Connection]:
    """A short-lived connection; any driver error leaves as a classified `ProbeError`."""
    created = engine(profile, readonly=readonly, statement_timeout=statement_timeout)
    with _classified(profile), created.connect() as connection:
        yield connection


@contextlib.contextmanager
def change(profile: Profile) -> Iterator[sa.Connection]:
    """One write transaction for a remedy, holding the write lock from its first read
    (SQLite: BEGIN IMMEDIATE; PostgreSQL: the remedy selects FOR UPDATE)."""
    with _classified(profile), engine(profile, readonly=False).begin() as connection:
        yield connection


@contextlib.contextmanager
def sqlite_file(path: Path, *, readonly: bool, busy_s: float) -> Iterator[sqlite3.Connection]:
    """A plain sqlite3 connection for work SQLAlchemy cannot wrap (the backup API, VACUUM):
    busy timeout set, autocommit (the caller opens transactions), always closed."""
    uri = f"file:{path}?mode=ro" if readonly else f"file:{path}"
    connection = sqlite3.connect(uri, uri=True, timeout=busy_s, isolation_level=None)
    try:
        yield connection
    finally:
        connection.close()


def each_query(
    profile: Profile, queries: dict[str, str]
) -> Iterator[tuple[str, pd.DataFrame | str]]:
    """The profile's named read-only queries (invariants, KPIs) on one connection, each as
    (name, its rows) or (name, why it failed) when only that query failed; a failure of
    the database itself raises, since every query after it would fail the same way."""
    with connect(profile) as connection:
        for name, query in queries.items():
            try:
                rows = frame(connection, query)
            except sa.exc.SQLAlchemyError as exc:
                connection.rollback()
                error = classify(exc)
                if error.status is Status.CRITICAL:  # the database, not this query, is broken
                    raise error from None
                yield name, error.reason
                continue
            yield name, rows
