"""SQLite faults at the probe level, on a copy of the demo: a writer holding EXCLUSIVE, a
damaged, truncated, emptied or missing file, and the database on a read-only filesystem.
A reading is CRITICAL or UNKNOWN with the reason (an unattended run waits out one busy
timeout), a read-only medium is still read, and a fix that cannot be written changes no
row."""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from faults_support import (
    NOT_OK,
    Scenario,
    assert_clean_archive,
    assert_within,
    bound,
    sqlite_digest,
    statuses,
)
from support import Workspace

from opslib.actions import Outcome
from opslib.actions.queue import ResetStuckJobs
from opslib.checks import CheckResult
from opslib.profiles import load_profile
from opslib.runbook import Runbook
from opslib.status import Status

BUSY_TIMEOUT_S = 2  # the demo profile's connect_timeout, SQLite's busy timeout
DATABASE_CHECKS = (
    "database_reachable",
    "database_integrity",
    "queue_depth",
    "stuck_jobs",
    "failure_rate",
)
QUEUE_CHECKS = ("queue_depth", "stuck_jobs", "failure_rate")
HOLD_EXCLUSIVE = """
import sqlite3, sys, time
connection = sqlite3.connect(sys.argv[1], isolation_level=None)
connection.execute("BEGIN EXCLUSIVE")
connection.execute("UPDATE jobs SET error = 'held' WHERE id = 1")
print("locked", flush=True)
time.sleep(120)
"""


@contextlib.contextmanager
def exclusive_lock(database: Path) -> Iterator[Path]:
    """A writer mid-transaction holding EXCLUSIVE: no reader gets in."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_EXCLUSIVE, str(database)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        yield database
    finally:
        holder.kill()
        holder.wait(timeout=10)


@contextlib.contextmanager
def pages_overwritten(database: Path) -> Iterator[Path]:
    """Every page after the first overwritten: the schema reads, the tables do not."""
    size = database.stat().st_size
    with open(database, "r+b") as damaged:
        damaged.seek(4096)
        damaged.write(os.urandom(size - 4096))
    yield database


@contextlib.contextmanager
def not_a_database(database: Path) -> Iterator[Path]:
    database.write_bytes(os.urandom(database.stat().st_size))
    yield database


@contextlib.contextmanager
def truncated(database: Path) -> Iterator[Path]:
    """Cut in half, as a copy interrupted by a full disk leaves it."""
    with open(database, "r+b") as cut:
        cut.truncate(database.stat().st_size // 2)
    yield database


@contextlib.contextmanager
def emptied(database: Path) -> Iterator[Path]:
    """Zero bytes: SQLite opens it as an empty database, so the tables are missing."""
    database.write_bytes(b"")
    yield database


@contextlib.contextmanager
def missing(database: Path) -> Iterator[Path]:
    database.unlink()
    yield database


SCENARIOS = [
    Scenario("sqlite-exclusive-lock", "a writer holds EXCLUSIVE; busy timeout 2 s",
             exclusive_lock, DATABASE_CHECKS, statuses(Status.CRITICAL), bound(BUSY_TIMEOUT_S)),
    Scenario("sqlite-corrupt-pages", "every page after the first is garbage", pages_overwritten,
             ("database_integrity", *QUEUE_CHECKS), statuses(Status.CRITICAL), bound(1)),
    Scenario("sqlite-not-a-database", "the file is random bytes", not_a_database,
             DATABASE_CHECKS, statuses(Status.CRITICAL), bound(1)),
    Scenario("sqlite-truncated", "the file cut in half", truncated,
             DATABASE_CHECKS, statuses(Status.CRITICAL), bound(1)),
    Scenario("sqlite-empty-file", "the file is zero bytes", emptied,
             QUEUE_CHECKS, NOT_OK, bound(1)),
    Scenario("sqlite-missing-file", "the file is gone", missing,
             DATABASE_CHECKS, statuses(Status.CRITICAL), bound(1)),
]  # fmt: skip


def _evaluate(checks: tuple[str, ...]) -> tuple[list[CheckResult], float]:
    """Each check's results as an unattended run gets them, and the seconds they took."""
    runbook = Runbook("faults", load_profile("demo"))
    started = time.monotonic()
    findings = [runbook.evaluate(check) for check in checks]
    return [r for finding in findings for r in finding.results], time.monotonic() - started


@pytest.mark.parametrize("scenario", SCENARIOS, ids=str)
def test_sqlite_fault_is_reported_within_its_timeout(
    scenario: Scenario, workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPSLIB_RUN_ID", f"fault-{scenario.name}")
    database = workspace.data / "demo" / "pipeline.db"
    before = sqlite_digest(database)
    with scenario.setup(database):
        results, elapsed_s = _evaluate(scenario.command)
    assert {r.name for r in results} == set(scenario.command), results
    for result in results:
        assert result.status in scenario.expected, f"{result.name}: {result.summary}"
    assert_within(scenario.name, elapsed_s, scenario.bound_s)
    if scenario.setup is exclusive_lock:  # the holder's own change rolled back with it
        assert sqlite_digest(database) == before


@pytest.fixture
def read_only_demo(
    workspace: Workspace, tmpfs: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> Callable[[str], Path]:
    """The demo's data on a tmpfs remounted read-only, its database in the journal mode
    asked for (`delete`, the default, or `wal` as busy pipelines use). Returns the
    database's path."""

    def make(journal_mode: str) -> Path:
        medium = tmpfs("readonly-data", "8m")
        shutil.copytree(workspace.data, medium / "data")
        database = medium / "data" / "demo" / "pipeline.db"
        with contextlib.closing(sqlite3.connect(database)) as connection:
            connection.execute(f"PRAGMA journal_mode={journal_mode}")
        subprocess.run(["mount", "-o", "remount,ro", str(medium)], check=True)
        monkeypatch.setenv("OPSLIB_DATA_DIR", str(medium / "data"))
        workspace.env["OPSLIB_DATA_DIR"] = str(medium / "data")
        return database

    return make


def test_sqlite_read_only_filesystem_is_still_read(
    read_only_demo: Callable[[str], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """opslib only reads: a database on read-only media (a snapshot, a mounted backup)
    answers every check, the demo's stuck jobs included."""
    monkeypatch.setenv("OPSLIB_RUN_ID", "fault-sqlite-read-only")
    read_only_demo("delete")
    results, elapsed_s = _evaluate(DATABASE_CHECKS)
    found = {r.name: r.status for r in results}
    assert found["stuck_jobs"] is Status.WARNING, results
    assert set(found.values()) <= {Status.OK, Status.WARNING}, results
    assert_within("sqlite-read-only-fs", elapsed_s, bound(1))


def test_sqlite_wal_database_on_a_read_only_filesystem_is_critical(
    read_only_demo: Callable[[str], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A WAL database needs its -shm file, which a read-only medium cannot get: the
    pipeline cannot open it either, so every reading is CRITICAL, never a silent OK."""
    monkeypatch.setenv("OPSLIB_RUN_ID", "fault-sqlite-wal-read-only")
    read_only_demo("wal")
    results, elapsed_s = _evaluate(DATABASE_CHECKS)
    assert [r.status for r in results] == [Status.CRITICAL] * len(DATABASE_CHECKS), results
    assert_within("sqlite-wal-read-only-fs", elapsed_s, bound(BUSY_TIMEOUT_S))


def _reset_stuck_jobs() -> tuple[Outcome, float]:
    """stuck-pipeline's fix applied as its notebook cell does (`-p apply=true`)."""
    umask = os.umask(0o022)  # Runbook.open makes the process's new files private
    try:
        runbook = Runbook.open("stuck-pipeline", "demo")
        started = time.monotonic()
        outcome = runbook.act(ResetStuckJobs(runbook.profile), apply=True)
        return outcome, time.monotonic() - started
    finally:
        os.umask(umask)


def test_sqlite_fix_on_a_read_only_filesystem_fails_and_changes_nothing(
    read_only_demo: Callable[[str], Path], workspace: Workspace
) -> None:
    database = read_only_demo("delete")
    before = sqlite_digest(database)
    outcome, elapsed_s = _reset_stuck_jobs()
    assert outcome.mode == "failed" and outcome.result.status in NOT_OK, outcome.message
    assert sqlite_digest(database) == before
    assert_clean_archive(workspace.reports, outcome.message)
    assert_within("sqlite-apply-read-only-fs", elapsed_s, bound(BUSY_TIMEOUT_S))


def test_sqlite_fix_while_a_writer_holds_exclusive_fails_within_the_busy_timeout(
    workspace: Workspace,
) -> None:
    database = workspace.data / "demo" / "pipeline.db"
    before = sqlite_digest(database)
    with exclusive_lock(database):
        outcome, elapsed_s = _reset_stuck_jobs()
    assert sqlite_digest(database) == before
    assert outcome.mode == "failed" and outcome.result.status in NOT_OK, outcome.message
    assert_clean_archive(workspace.reports, outcome.message)
    assert_within("sqlite-apply-exclusive-lock", elapsed_s, bound(BUSY_TIMEOUT_S))
