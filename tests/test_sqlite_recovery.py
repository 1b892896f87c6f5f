"""SQLite backup, rollback, integrity and upkeep on the spots database, with real writers."""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import time
from pathlib import Path

from sqlite_holders import holding
from support import Workspace

from opslib.actions import execute, sqlite_copy
from opslib.actions.backup import RollbackDatabase, TakeBackup
from opslib.actions.maintenance import SqliteMaintenance
from opslib.archive.ledger import Ledger
from opslib.clock import utc_now
from opslib.context import RunContext
from opslib.probes import backups
from opslib.probes.files import sha256
from opslib.profiles import load_profile
from opslib.runbook import Runbook
from opslib.status import Status


def _count(database: Path, table: str = "spots") -> int:
    """Rows now, read read-write: a writer killed mid-commit leaves a hot journal only a
    read-write open rolls back."""
    with contextlib.closing(sqlite3.connect(database)) as connection:
        return connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def _context() -> RunContext:
    return RunContext.current("test", "spots")


def test_backup_while_a_writer_commits_is_a_committed_state(spots: Path) -> None:
    profile = load_profile("spots")
    with holding("committer", spots):
        time.sleep(0.3)
        backup = sqlite_copy.take(profile, utc_now())
        time.sleep(0.3)
    copied = sqlite_copy.describe(backup.path, ["ticks"])
    with sqlite3.connect(backup.path) as connection:
        count, highest = connection.execute("SELECT count(*), max(n) FROM ticks").fetchone()
    assert copied["integrity"] == "ok"
    assert count == highest > 0, "the copy holds a state no commit left"
    assert _count(spots, "ticks") > count, "the writer was not committing during the copy"
    manifest = json.loads(backup.manifest_path.read_text())
    assert manifest["sha256"] == sha256(backup.path)
    assert manifest["tables"]["spots"]["rows"] == 20_000


def test_backup_runbook_keeps_retention_and_reports_the_age(
    spots: Path, workspace: Workspace
) -> None:
    result = workspace.opslib("run", "backup", "--profile", "spots", "-p", "apply=true")
    assert result.returncode == 0, result.stdout + result.stderr
    (copy,) = (spots.parent / "backups").glob("spots-*.db")
    assert sqlite_copy.describe(copy, ["spots"])["integrity"] == "ok"


def test_rollback_refuses_while_a_writer_holds_the_file(spots: Path) -> None:
    profile = load_profile("spots")
    sqlite_copy.take(profile, utc_now())
    with holding("wal-writer", spots) as writer:
        before = spots.read_bytes()
        outcome = execute(RollbackDatabase(profile), _context(), Ledger, apply=True)
        assert writer.poll() is None
        assert spots.read_bytes() == before
    assert outcome.result.status is Status.UNKNOWN
    assert (
        "refusing to replace production.db" in outcome.message
        and str(writer.pid) in outcome.message
    )
    assert not list((spots.parent / "backups").glob("*.before-rollback"))


def test_rollback_swaps_in_the_backup_and_keeps_the_current_file(spots: Path) -> None:
    profile = load_profile("spots")
    sqlite_copy.take(profile, utc_now())
    with sqlite3.connect(spots) as connection:
        connection.execute("DELETE FROM spots WHERE spot_id <= 500")
    connection.close()
    os.chown(spots, 65534, 65534)  # the pipeline's own user must still write the file
    os.chmod(spots, 0o664)
    outcome = execute(RollbackDatabase(profile), _context(), Ledger, apply=True)
    assert outcome.mode == "applied", outcome.message
    assert _count(spots) == 20_000
    status = spots.stat()
    assert (status.st_uid, status.st_gid, status.st_mode & 0o777) == (65534, 65534, 0o664)
    (kept,) = (spots.parent / "backups").glob("*.before-rollback")
    assert _count(kept / "production.db") == 19_500
    (audit,) = Ledger().applied_changes("rollback_database", "spots")[:1]
    assert audit[1][0]["kept_previous"] == str(kept)
    assert Runbook("t", profile).evaluate("restore_time").status is Status.OK


def test_overwritten_pages_make_data_integrity_critical(spots: Path, workspace: Workspace) -> None:
    with spots.open("r+b") as stream:  # page 40 onwards: table and index pages
        stream.seek(4096 * 40)
        stream.write(b"\xa5" * 4096 * 8)
    result = workspace.opslib("run", "data-integrity", "--profile", "spots")
    assert result.returncode == 2, result.stdout + result.stderr
    integrity = next(line for line in result.stdout.splitlines() if "database_integrity" in line)
    assert "CRITICAL" in integrity


def test_integrity_check_past_its_budget_is_unknown(spots: Path) -> None:
    finding = Runbook("t", load_profile("spots")).evaluate(
        "database_integrity", full=True, budget_s=1e-6
    )
    assert finding.status is Status.UNKNOWN
    assert "integrity_check not finished in" in finding.results[0].summary


def test_vacuum_gives_back_free_pages_only_when_asked(spots: Path) -> None:
    profile = load_profile("spots")
    with sqlite3.connect(spots) as connection:
        connection.execute("DELETE FROM spots WHERE spot_id <= 12000")
    connection.close()
    freed = Runbook("t", profile).evaluate("sqlite_storage").results[0].value
    assert freed > 10
    dry = execute(SqliteMaintenance(profile, vacuum=True), _context(), Ledger)
    assert (
        dry.mode == "dry-run"
        and Runbook("t", profile).evaluate("sqlite_storage").results[0].value == freed
    )
    applied = execute(SqliteMaintenance(profile, vacuum=True), _context(), Ledger, apply=True)
    assert applied.mode == "applied", applied.message
    assert Runbook("t", profile).evaluate("sqlite_storage").results[0].value == 0


def test_take_backup_prunes_by_retention(spots: Path) -> None:
    profile = load_profile("spots")
    folder = profile.backup_dir()
    for hours in range(30):  # thirty hourly copies from the past
        taken = utc_now().replace(minute=0) - __import__("datetime").timedelta(hours=hours + 1)
        backup = backups.Backup(folder / f"spots-{taken.strftime(backups.STAMP)}.db", taken)
        folder.mkdir(exist_ok=True)
        backup.path.write_bytes(b"")
    outcome = execute(TakeBackup(profile), _context(), Ledger, apply=True)
    assert outcome.mode == "applied", outcome.message
    assert len(backups.existing(profile)) < 31


def test_a_writer_that_died_mid_transaction_is_named_as_the_cause(spots: Path) -> None:
    with holding("crash-mid-write", spots):
        pass  # killed with its transaction half written
    finding = Runbook("t", load_profile("spots")).evaluate("database_reachable")
    assert finding.status is Status.CRITICAL
    assert "hot journal" in finding.results[0].summary
    assert _count(spots) == 20_000  # a read-write open rolls the half-written work back
    assert Runbook("t", load_profile("spots")).evaluate("database_reachable").status is Status.OK


def test_long_reads_and_vacuum_wait_for_the_stages_to_finish(spots: Path) -> None:
    """In rollback-journal mode opslib must not be the reader a stage's commit waits on."""
    profile = load_profile("spots")
    with holding("idle", spots, tag="cli_02_assign_business_rules") as stage:
        full = Runbook("t", profile).evaluate("database_integrity", full=True)
        vacuum = execute(SqliteMaintenance(profile, vacuum=True), _context(), Ledger, apply=True)
        quick = Runbook("t", profile).evaluate("database_integrity")
    assert full.status is Status.UNKNOWN and f"pid {stage.pid}" in full.results[0].summary
    assert vacuum.mode == "failed" and "refusing to plan VACUUM" in vacuum.message
    assert quick.status is Status.OK  # quick_check stays in the morning check


def test_a_swap_that_does_not_verify_is_critical_and_says_it_replaced_the_file(
    spots: Path,
) -> None:
    profile = load_profile("spots")
    backup = sqlite_copy.take(profile, utc_now())
    manifest = json.loads(backup.manifest_path.read_text())
    manifest["tables"]["spots"]["rows"] += 1  # the backup no longer proves what it holds
    backup.manifest_path.write_text(json.dumps(manifest))
    outcome = execute(RollbackDatabase(profile), _context(), Ledger, apply=True)
    assert outcome.result.status is Status.CRITICAL
    assert "was replaced by" in outcome.message and "previous file is kept" in outcome.message
    (kept,) = (spots.parent / "backups").glob("*.before-rollback")
    assert _count(kept / "production.db") == 20_000
