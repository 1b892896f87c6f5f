"""PostgreSQL faults at the probe level: the server down, hung, full, locked, slow, or
refusing the credentials. Each check the fault reaches is CRITICAL or UNKNOWN with a
reason free of secrets, an unattended run pays for an unreachable server once, and no
row changes."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from faults_support import (
    DB_PASSWORD,
    NOT_OK,
    WRONG_PASSWORD,
    GuardedDatabase,
    Scenario,
    assert_probe_scenario,
    bound,
    free_port,
    statuses,
    write_profile,
)

from opslib.profiles import load_profile
from opslib.runbook import Runbook
from opslib.status import Status

PROFILE = """targets:
  database:
    url: ${FAULT_PG_DSN}
    connect_timeout: %(connect)s s
    statement_timeout: 1 s
    lock_timeout: 1 s
queue:
  table: jobs
  stuck_after: 30 min
invariants:
  %(invariant)s
"""
ORDINARY_INVARIANT = "negative_costs: SELECT id FROM jobs WHERE cost_usd < 0"
UNREACHABLE_CHECKS = ("database_reachable", "queue_depth", "stuck_jobs", "pg_connections")


@dataclass
class Faulted:
    """What a setup hands the test: the DSN to use, and the profile's knobs."""

    dsn: str
    connect_timeout_s: float = 2
    invariant: str = ORDINARY_INVARIANT


@dataclass
class Stage:
    """The real things a setup can use to provoke its fault."""

    database: GuardedDatabase
    hanging_port: int


@contextlib.contextmanager
def nothing_listening(stage: Stage) -> Iterator[Faulted]:
    """The server's socket folder, a port no server listens on: the server is down."""
    server = stage.database.server
    yield Faulted(
        f"postgresql://pipeline:{DB_PASSWORD}@/pipeline?host={server.socket_dir}&port={free_port()}"
    )


@contextlib.contextmanager
def refused_over_tcp(_stage: Stage) -> Iterator[Faulted]:
    yield Faulted(f"postgresql://pipeline:{DB_PASSWORD}@127.0.0.1:{free_port()}/pipeline")


@contextlib.contextmanager
def hung_listener(stage: Stage, connect_timeout_s: float = 2) -> Iterator[Faulted]:
    yield Faulted(
        f"postgresql://pipeline:{DB_PASSWORD}@127.0.0.1:{stage.hanging_port}/pipeline",
        connect_timeout_s,
    )


@contextlib.contextmanager
def hung_listener_one_second(stage: Stage) -> Iterator[Faulted]:
    with hung_listener(stage, connect_timeout_s=1) as faulted:
        yield faulted


@contextlib.contextmanager
def wrong_password(stage: Stage) -> Iterator[Faulted]:
    yield Faulted(stage.database.dsn(WRONG_PASSWORD))


@contextlib.contextmanager
def missing_database(stage: Stage) -> Iterator[Faulted]:
    yield Faulted(stage.database.dsn(database="no_such_database"))


@contextlib.contextmanager
def slots_exhausted(stage: Stage) -> Iterator[Faulted]:
    """The pipeline's own workers hold every slot a non-superuser may have."""
    held = []
    try:
        while True:
            held.append(stage.database.connect("pipeline"))
    except psycopg.OperationalError as refused:
        assert "slots" in str(refused) or "too many" in str(refused), refused
    try:
        yield Faulted(stage.database.dsn())
    finally:
        for connection in held:
            connection.close()


@contextlib.contextmanager
def table_locked(stage: Stage) -> Iterator[Faulted]:
    """A migration took ACCESS EXCLUSIVE on the queue table and sits in its transaction."""
    with stage.database.connect() as holder:
        holder.execute("BEGIN")
        holder.execute("LOCK TABLE jobs IN ACCESS EXCLUSIVE MODE")
        yield Faulted(stage.database.dsn())
        holder.execute("ROLLBACK")


@contextlib.contextmanager
def statement_sleeps(stage: Stage) -> Iterator[Faulted]:
    """A data rule whose query takes minutes (here: pg_sleep)."""
    yield Faulted(
        stage.database.dsn(),
        invariant="slow_rule: SELECT id FROM jobs WHERE pg_sleep(30) IS NOT NULL",
    )


@contextlib.contextmanager
def advisory_lock_held(stage: Stage) -> Iterator[Faulted]:
    """A data rule that waits on an advisory lock a worker holds for good."""
    with stage.database.connect() as holder:
        holder.execute("SELECT pg_advisory_lock(4242)")
        yield Faulted(
            stage.database.dsn(),
            invariant="locked_rule: SELECT pg_advisory_xact_lock(4242)::text AS id",
        )


def _scenario(
    name: str,
    fault: str,
    setup: Callable[[Stage], AbstractContextManager[Faulted]],
    checks: tuple[str, ...],
    expected: frozenset[Status],
    timeout_s: float,
) -> Scenario:
    return Scenario(name, fault, setup, checks, expected, bound(timeout_s))


SCENARIOS = [
    _scenario("pg-down-socket", "no server on the socket", nothing_listening,
              UNREACHABLE_CHECKS, statuses(Status.CRITICAL), 2),
    _scenario("pg-down-tcp", "connection refused on 127.0.0.1", refused_over_tcp,
              UNREACHABLE_CHECKS, statuses(Status.CRITICAL), 2),
    _scenario("pg-hanging-listener", "accepts, never answers; connect_timeout 2 s",
              hung_listener, UNREACHABLE_CHECKS, statuses(Status.CRITICAL), 2),
    _scenario("pg-connect-timeout-1s", "connect_timeout 1 s, which libpq cannot keep: refused",
              hung_listener_one_second, ("database_reachable",), statuses(Status.UNKNOWN), 1),
    _scenario("pg-wrong-password", "password authentication fails", wrong_password,
              UNREACHABLE_CHECKS, statuses(Status.CRITICAL), 2),
    _scenario("pg-missing-database", "the database does not exist", missing_database,
              UNREACHABLE_CHECKS, statuses(Status.CRITICAL), 2),
    _scenario("pg-max-connections", "every non-superuser slot taken", slots_exhausted,
              UNREACHABLE_CHECKS, statuses(Status.CRITICAL), 2),
    _scenario("pg-table-lock-held", "ACCESS EXCLUSIVE on the queue table; lock_timeout 1 s",
              table_locked, ("stuck_jobs",), statuses(Status.UNKNOWN), 1),
    _scenario("pg-statement-hang-sleep", "a rule's query sleeps; statement_timeout 1 s",
              statement_sleeps, ("invariant",), NOT_OK, 1),
    _scenario("pg-statement-hang-advisory", "a rule's query waits on an advisory lock",
              advisory_lock_held, ("invariant",), NOT_OK, 1),
]  # fmt: skip


@pytest.mark.parametrize("scenario", SCENARIOS, ids=str)
def test_postgres_fault_is_reported_within_its_timeout(
    scenario: Scenario,
    guarded_db: GuardedDatabase,
    hanging_listener: int,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPSLIB_RUN_ID", f"fault-{scenario.name}")  # an unattended run
    before = guarded_db.digest()
    with scenario.setup(Stage(guarded_db, hanging_listener)) as faulted:
        monkeypatch.setenv("FAULT_PG_DSN", faulted.dsn)
        body = PROFILE % {"connect": faulted.connect_timeout_s, "invariant": faulted.invariant}
        runbook = Runbook("faults", load_profile(str(write_profile(tmp_path, "pg", body))))
        started = time.monotonic()
        findings = [runbook.evaluate(check) for check in scenario.command]
        elapsed_s = time.monotonic() - started
    assert_probe_scenario(scenario, findings, elapsed_s)
    assert guarded_db.digest() == before


def test_a_statement_cancelled_by_its_timeout_leaves_no_session_behind(
    guarded_db: GuardedDatabase, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a timed-out rule the server holds no opslib session (the next run would
    find the slot taken, and a slow query still running)."""
    with statement_sleeps(Stage(guarded_db, 0)) as faulted:
        monkeypatch.setenv("FAULT_PG_DSN", faulted.dsn)
        body = PROFILE % {"connect": 2, "invariant": faulted.invariant}
        runbook = Runbook("faults", load_profile(str(write_profile(tmp_path, "pg", body))))
        finding = runbook.evaluate("invariant")
    assert finding.status in NOT_OK
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        with guarded_db.connect() as admin:
            left = admin.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'opslib'"
            ).fetchone()[0]
        if left == 0:
            break
        time.sleep(0.1)
    assert left == 0
