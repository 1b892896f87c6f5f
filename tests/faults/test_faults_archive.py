"""The archive under fire: a full disk (with and without room for the run), a read-only
archive, a corrupt ledger, a ledger locked by another process, a PostgreSQL ledger down
or hung. The run's measured status still reaches the monitoring system (the JSON line),
the exit code is that status or UNKNOWN, the command ends within --timeout + 10 %, and
the archive holds no half-written file."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from faults_support import (
    QUERY_PASSWORD,
    Scenario,
    assert_clean_archive,
    assert_within,
    bound,
    fill,
    free_port,
    run_opslib,
    runbook_cells,
    sqlite_digest,
    statuses,
)
from postgres_server import PostgresServer
from support import Workspace

from opslib.status import Status

RUNBOOK = "fault-archive"
STUCK = 'rb.evaluate("stuck_jobs")'  # WARNING on the demo: three jobs stuck
DISK = 'rb.evaluate("disk_free")'  # CRITICAL for an archive under 5 % free
MEASURED = statuses(Status.WARNING, Status.UNKNOWN)  # the status, or UNKNOWN: not archived
DISK_CRITICAL = statuses(Status.CRITICAL)  # worse than not archived: the disk is full
HOLD_LEDGER = """
import os, sqlite3, sys, time
os.umask(0o077)  # the holder's own files (the journal) must not be what fails the check
connection = sqlite3.connect(sys.argv[1], isolation_level=None)
connection.execute("CREATE TABLE IF NOT EXISTS hold (x)")
connection.execute("BEGIN EXCLUSIVE")
connection.execute("INSERT INTO hold VALUES (1)")
print("held", flush=True)
time.sleep(120)
"""


@dataclass
class Stage:
    """What a setup can use: the workspace (its env is what the run gets), mounts, the
    guarded PostgreSQL, a port that never answers."""

    workspace: Workspace
    tmpfs: Callable[..., Path]
    server: PostgresServer
    hanging_port: int

    def archive_on(self, folder: Path) -> None:
        """The run's archive: `reports/` in `folder` (opslib creates it)."""
        self.workspace.env["OPSLIB_REPORTS_DIR"] = str(folder / "reports")


def archive_on_a_filled_disk(size: str, leave_bytes: int) -> Callable[[Stage], Any]:
    """A setup putting the archive on a tmpfs of `size` filled to `leave_bytes` free."""

    @contextlib.contextmanager
    def setup(stage: Stage) -> Iterator[None]:
        medium = stage.tmpfs(f"filled-{size}", size)
        stage.archive_on(medium)
        fill(medium, leave_bytes)
        yield

    return setup


disk_full = archive_on_a_filled_disk("1m", 0)
# ~200 KB of 4 MB free: the ledger fits, the report (~270 KB of HTML) does not
room_for_the_ledger_only = archive_on_a_filled_disk("4m", 200_000)
# ~4 % of 16 MB free, room for the run: archived, and the archive's disk critically full
nearly_full_with_room = archive_on_a_filled_disk("16m", 700_000)


@contextlib.contextmanager
def read_only(stage: Stage) -> Iterator[None]:
    medium = stage.tmpfs("read-only", "1m", readonly=True)
    stage.workspace.env["OPSLIB_REPORTS_DIR"] = str(medium)
    yield


@contextlib.contextmanager
def corrupt_ledger(stage: Stage) -> Iterator[None]:
    reports = stage.workspace.reports
    reports.mkdir(mode=0o700, parents=True)
    (reports / "ledger.sqlite").write_bytes(os.urandom(64 * 1024))
    os.chmod(reports / "ledger.sqlite", 0o600)
    yield


@contextlib.contextmanager
def ledger_locked(stage: Stage) -> Iterator[None]:
    """Another process holds an EXCLUSIVE transaction on the ledger and keeps it."""
    reports = stage.workspace.reports
    reports.mkdir(mode=0o700, parents=True)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LEDGER, str(reports / "ledger.sqlite")],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        yield
    finally:
        holder.kill()
        holder.wait(timeout=10)


@contextlib.contextmanager
def postgres_ledger_down(stage: Stage) -> Iterator[None]:
    """OPSLIB_LEDGER_URL names a server that is not running, its password in the query."""
    server = stage.server
    stage.workspace.env["OPSLIB_LEDGER_URL"] = (
        f"postgresql:///ledger?host={server.socket_dir}&port={free_port()}"
        f"&user=auditor&password={QUERY_PASSWORD}"
    )
    yield


@contextlib.contextmanager
def postgres_ledger_hangs(stage: Stage) -> Iterator[None]:
    """libpq waits whole seconds (at least 2) to connect, so the ledger's wait is the time
    left rounded: --timeout 10 leaves that rounding room within the 10 %
    (pg-hanging-listener-1s shows the floor itself)."""
    stage.workspace.env["OPSLIB_LEDGER_URL"] = (
        f"postgresql://auditor:{QUERY_PASSWORD}@127.0.0.1:{stage.hanging_port}/ledger"
    )
    yield


def _run(*extra: str) -> tuple[str, ...]:
    return ("run", RUNBOOK, "--format", "json", *extra)


SCENARIOS = [
    Scenario("archive-disk-full", "the archive's filesystem has 0 bytes free", disk_full,
             _run("--timeout", "10"), DISK_CRITICAL, bound(10)),
    Scenario("archive-room-for-ledger-only", "200 KB free: the ledger fits, the report not",
             room_for_the_ledger_only, _run("--timeout", "10"), DISK_CRITICAL, bound(10)),
    Scenario("archive-nearly-full-with-room", "4 % free, room for the run", nearly_full_with_room,
             _run("--timeout", "10"), DISK_CRITICAL, bound(10)),
    Scenario("archive-read-only", "the archive is a read-only mount", read_only,
             _run("--timeout", "10"), MEASURED, bound(10)),
    Scenario("archive-corrupt-ledger", "ledger.sqlite is random bytes", corrupt_ledger,
             _run("--timeout", "10"), MEASURED, bound(10)),
    Scenario("archive-ledger-locked", "another process holds EXCLUSIVE on the ledger",
             ledger_locked, _run("--timeout", "10"), MEASURED, bound(10)),
    Scenario("archive-postgres-ledger-down", "OPSLIB_LEDGER_URL: no server (?password=)",
             postgres_ledger_down, _run("--timeout", "10"), MEASURED, bound(10)),
    Scenario("archive-postgres-ledger-hangs", "OPSLIB_LEDGER_URL: accepts, never answers",
             postgres_ledger_hangs, _run("--timeout", "10"), MEASURED, bound(10)),
]  # fmt: skip


@pytest.mark.parametrize("scenario", SCENARIOS, ids=str)
def test_archive_fault_still_reports_the_measured_status(
    scenario: Scenario,
    workspace: Workspace,
    tmpfs: Callable[..., Path],
    guarded_server: PostgresServer,
    hanging_listener: int,
) -> None:
    workspace.add_runbook(RUNBOOK, *runbook_cells(RUNBOOK, STUCK, DISK))
    database = workspace.data / "demo" / "pipeline.db"
    before = sqlite_digest(database)
    stage = Stage(workspace, tmpfs, guarded_server, hanging_listener)
    with scenario.setup(stage):
        ran = run_opslib(
            workspace.env, workspace.root, *scenario.command, kill_after_s=2 * scenario.bound_s
        )
    assert_within(scenario.name, ran.elapsed_s, scenario.bound_s)
    assert Status(ran.returncode) in scenario.expected, ran.output
    outcome = ran.json()
    assert outcome["status"] == Status(ran.returncode).name, outcome
    measured = {result["name"]: result["status"] for result in outcome["results"]}
    assert measured.get("stuck_jobs") == "WARNING", f"the measured status was lost: {outcome}"
    assert "Traceback" not in ran.output
    assert_clean_archive(workspace.reports, ran.stdout, ran.stderr)
    assert sqlite_digest(database) == before


def test_archive_history_of_a_corrupt_ledger_is_one_line(workspace: Workspace) -> None:
    workspace.reports.mkdir(mode=0o700, parents=True)
    (workspace.reports / "ledger.sqlite").write_bytes(os.urandom(64 * 1024))
    ran = run_opslib(workspace.env, workspace.root, "history", kill_after_s=20)
    assert_within("archive-history-corrupt-ledger", ran.elapsed_s, bound(2))
    assert ran.returncode == int(Status.UNKNOWN), ran.output
    assert len(ran.stderr.strip().splitlines()) == 1 and "Traceback" not in ran.output
