"""Fault injection into a real PostgreSQL: a blocked UPDATE, a transaction left open, a
server out of connections. Each runbook must name the culprit and plan to touch only it."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator

import psycopg
import pytest
from postgres_server import PostgresServer
from support import PG_PROFILE, Workspace

from opslib.actions import execute
from opslib.actions.postgres import ReleaseBlockers
from opslib.archive.ledger import Ledger
from opslib.context import RunContext
from opslib.probes.postgres import (
    blocking_chains,
    connections,
    idle_in_transaction,
    long_transactions,
)
from opslib.profiles import load_profile
from opslib.status import Status


def session(server: PostgresServer, database: str = "pipeline") -> psycopg.Connection:
    return psycopg.connect(server.url(database), application_name="pipeline-worker")


@pytest.fixture
def blocked_update(server: PostgresServer, pipeline: str) -> Iterator[tuple[int, int]]:
    """A worker updates job 1 and leaves its transaction open; another worker's UPDATE
    of the same row waits behind it. Yields (blocker pid, blocked pid)."""
    holder = session(server)
    holder.execute("UPDATE jobs SET error = 'held by a stalled worker' WHERE id = 1")
    waiter = session(server)
    waiting = threading.Thread(
        target=lambda: waiter.execute("UPDATE jobs SET status = 'failed' WHERE id = 1"), daemon=True
    )
    waiting.start()
    profile = load_profile(pipeline)
    deadline = time.monotonic() + 10
    while blocking_chains(profile).empty and time.monotonic() < deadline:
        time.sleep(0.05)
    yield holder.info.backend_pid, waiter.info.backend_pid
    holder.close()  # releases the row lock, so the waiting UPDATE can finish
    waiting.join(timeout=10)
    waiter.close()


def test_blocked_update_is_critical_and_names_the_blocking_pid_and_query(
    workspace: Workspace, pipeline: str, blocked_update: tuple[int, int]
) -> None:
    blocker, blocked = blocked_update
    result = workspace.opslib("run", "database-locks", "--profile", pipeline)
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"on pid {blocker}" in result.stdout
    assert "held by a stalled worker" in result.stdout
    (page,) = [p for p in workspace.archive_files() if p.suffix == ".html"]
    html = page.read_text()
    plan = re.search(r"Plan cancel_blockers.*?</p>", html, re.S).group(0)
    assert f"pid {blocker}" in plan and str(blocked) not in plan


def test_release_targets_only_the_blocker_and_terminate_unblocks_the_queue(
    server: PostgresServer, pipeline: str, blocked_update: tuple[int, int]
) -> None:
    blocker, blocked = blocked_update
    profile = load_profile(pipeline)
    context = RunContext.current("database-locks", "pg")
    dry = execute(ReleaseBlockers(profile, terminate=True), context, Ledger)
    assert dry.mode == "dry-run" and [c["pid"] for c in dry.plan.changes] == [blocker]
    applied = execute(ReleaseBlockers(profile, terminate=True), context, Ledger, apply=True)
    assert applied.mode == "applied", applied.message
    assert (applied.result.value, applied.plan.changes) == (
        1,
        ({"pid": blocker, "signal": "terminate"},),
    )
    deadline = time.monotonic() + 10
    while not blocking_chains(profile).empty and time.monotonic() < deadline:
        time.sleep(0.05)
    assert blocking_chains(profile).empty
    with session(server) as check:
        pids = [row[0] for row in check.execute("SELECT pid FROM pg_stat_activity")]
    assert blocker not in pids and blocked in pids


def test_transaction_left_open_is_a_warning_naming_the_pid(
    workspace: Workspace, server: PostgresServer, pipeline: str
) -> None:
    idle = session(server)
    idle.execute("SELECT count(*) FROM jobs")
    idle_pid = idle.info.backend_pid
    time.sleep(1.5)
    try:
        result = workspace.opslib(
            "run", "database-locks", "--profile", pipeline, "-p", "idle_after_s=1"
        )
    finally:
        idle.close()
    assert result.returncode == 1, result.stdout + result.stderr
    assert (
        f"WARNING  pg_idle_in_transaction: 1 session(s) idle in a transaction for more than 1 s: pid {idle_pid}"
        in result.stdout
    )


@pytest.fixture(scope="module")
def small_server() -> Iterator[PostgresServer]:
    server = PostgresServer.create(max_connections="8", superuser_reserved_connections="1")
    yield server
    server.destroy()


def test_connections_at_95_percent_of_a_low_limit_are_critical(
    small_server: PostgresServer, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    held = [session(small_server, "postgres") for _ in range(6)]  # + the probe's own = 7 of 7
    monkeypatch.setenv("OPSLIB_TEST_PG_URL", small_server.url())
    profile_path = tmp_path / "small.yaml"
    profile_path.write_text(PG_PROFILE)
    try:
        metric = connections(load_profile(str(profile_path)))
    finally:
        for connection in held:
            connection.close()
    assert metric.value == pytest.approx(100.0)
    assert "7 of 7 usable connections" in metric.summary
    from opslib.checks import judge
    from opslib.checks.catalogue import catalogue

    warning, critical = catalogue()["pg_connections"].thresholds(None, None)
    assert judge(metric.value, warning, critical) is Status.CRITICAL


def test_no_probe_leaves_a_session_open(server: PostgresServer, pipeline: str) -> None:
    from opslib.probes import postgres, queue

    profile = load_profile(pipeline)
    for probe in (
        postgres.connections,
        postgres.idle_in_transaction,
        postgres.blocked_sessions,
        queue.depth,
        queue.stuck_jobs,
    ):
        probe(profile)
    with session(server) as check:
        leftovers = check.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'opslib'"
        ).fetchone()
    assert leftovers == (0,)


def test_connection_exhaustion_ends_only_the_pipeline_roles_idle_sessions(
    workspace: Workspace, server: PostgresServer, pipeline: str
) -> None:
    with server.engine("pipeline", isolation_level="AUTOCOMMIT").connect() as admin:
        admin.exec_driver_sql("DROP ROLE IF EXISTS analyst")
        admin.exec_driver_sql("CREATE ROLE analyst LOGIN")
        admin.exec_driver_sql("GRANT SELECT ON jobs TO analyst")
    worker = session(server)
    worker.execute("SELECT count(*) FROM jobs")
    analyst = psycopg.connect(
        server.url("pipeline").replace("postgres@", "analyst@"), application_name="notebook"
    )
    analyst.execute("SELECT count(*) FROM jobs")
    worker_pid, analyst_pid = worker.info.backend_pid, analyst.info.backend_pid
    time.sleep(1.5)
    try:
        result = workspace.opslib(
            "run",
            "connection-exhaustion",
            "--profile",
            pipeline,
            "-p",
            "idle_after_s=1",
            "-p",
            "apply=true",
        )
        with session(server) as check:
            alive = {row[0] for row in check.execute("SELECT pid FROM pg_stat_activity")}
    finally:
        for connection in (worker, analyst):
            connection.close()
    assert "applied plan" in result.stdout, result.stdout + result.stderr
    assert worker_pid not in alive and analyst_pid in alive


def test_a_working_transaction_open_for_long_is_seen_with_what_it_holds(
    server: PostgresServer, pipeline: str
) -> None:
    """Not idle, so no idle check sees it; it still holds its row locks and holds back
    vacuum for as long as it runs."""
    worker = session(server)
    pid = worker.info.backend_pid
    started = threading.Event()

    def work() -> None:
        worker.execute("UPDATE jobs SET error = 'rewriting' WHERE id = 2")
        started.set()
        worker.execute("SELECT pg_sleep(4)")

    running = threading.Thread(target=work, daemon=True)
    running.start()
    try:
        assert started.wait(10)
        time.sleep(1.5)
        metric = long_transactions(load_profile(pipeline))
    finally:
        running.join(timeout=10)
        worker.close()
    assert metric.value is not None and 1.0 <= metric.value < 10
    oldest = metric.table.iloc[0]
    assert oldest["pid"] == pid and oldest["state"] == "active"
    assert "jobs RowExclusiveLock" in oldest["holds"] and "pg_sleep" in oldest["last_query"]
    assert f"pid {pid}" in metric.summary


def test_an_idle_transaction_that_wrote_holds_back_vacuum_one_that_read_does_not(
    server: PostgresServer, pipeline: str
) -> None:
    """Idle between statements, a read-committed transaction keeps no snapshot (no
    backend_xmin); one that wrote keeps its transaction id, and vacuum cannot remove any
    row version newer than it."""
    writer, reader = session(server), session(server)
    wrote, read = writer.info.backend_pid, reader.info.backend_pid
    try:
        writer.execute("UPDATE jobs SET error = 'kept open' WHERE id = 2")
        reader.execute("SELECT count(*) FROM jobs")
        metric = long_transactions(load_profile(pipeline))
    finally:
        writer.close()
        reader.close()
    holds = dict(zip(metric.table["pid"], metric.table["holds_back_vacuum"], strict=True))
    assert holds == {wrote: True, read: False}


def test_a_session_that_calls_itself_opslib_is_still_seen(
    server: PostgresServer, pipeline: str
) -> None:
    """opslib leaves out only the session it reads through, by pid: a worker (or an
    intruder) naming itself `opslib` is no reason to look away."""
    impostor = psycopg.connect(server.url("pipeline"), application_name="opslib")
    impostor.execute("SELECT count(*) FROM jobs")  # opens a transaction and goes idle
    try:
        metric = idle_in_transaction(load_profile(pipeline), older_than_s=0)
    finally:
        impostor.close()
    assert metric.value == 1 and metric.table.iloc[0]["application"] == "opslib"


def test_a_cancel_that_does_not_release_the_lock_is_not_resolved(
    pipeline: str, blocked_update: tuple[int, int]
) -> None:
    """The blocker sits idle in its transaction: there is no query to cancel, so the
    cancel 'succeeds' and the lock stays. Measured again, that is not a fix."""
    blocker, _ = blocked_update
    context = RunContext.current("database-locks", "pg")
    outcome = execute(ReleaseBlockers(load_profile(pipeline)), context, Ledger, apply=True)
    assert outcome.mode == "applied" and outcome.plan.changes[0]["pid"] == blocker
    assert "not resolved: 1 still match" in outcome.message
    assert outcome.result.status is Status.WARNING
