"""When the archive cannot be written, the run's measured status still reaches the
monitoring system; every wait of a run, the ledger's included, fits in its --timeout;
and what the archive holds is its owner's alone."""

from __future__ import annotations

import json
import sqlite3
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from postgres_server import PostgresServer
from support import Workspace

OPEN = 'from opslib.runbook import Runbook\nrb = Runbook.open("{name}", profile)'
CHECKS = 'rb.evaluate("database_reachable")\nrb.evaluate("stuck_jobs")'
FINISH = "rb.finish()"


def leftovers(reports: Path) -> list[Path]:
    """Temporary files a run must never leave in the archive."""
    return [p for p in reports.rglob("*") if p.is_file() and p.name.endswith((".part", ".tmp"))]


def test_a_corrupt_ledger_still_prints_the_measured_status_marked_unarchived(
    workspace: Workspace,
) -> None:
    workspace.reports.mkdir(parents=True, exist_ok=True)
    (workspace.reports / "ledger.sqlite").write_bytes(b"this is not a database" * 100)
    workspace.add_runbook("checks", OPEN.format(name="checks"), CHECKS, FINISH)
    result = workspace.opslib("run", "checks", "--format", "json")
    assert result.returncode == 3, result.stdout + result.stderr
    document = json.loads(result.stdout)
    by_name = {check["name"]: check for check in document["results"]}
    # the demo's three stuck jobs were measured and are reported, beside why nothing was kept
    assert by_name["stuck_jobs"]["status"] == "WARNING"
    assert by_name["archive"]["status"] == "UNKNOWN"
    assert "not archived" in by_name["archive"]["summary"]
    assert "file is not a database" in by_name["archive"]["summary"]
    assert "the run was not archived" in document["headline"]
    assert "Traceback" not in result.stderr
    assert leftovers(workspace.reports) == []


@pytest.fixture
def read_only_archive(workspace: Workspace) -> Iterator[Path]:
    """The workspace's archive on a read-only tmpfs (root can write through chmod)."""
    folder = workspace.reports
    folder.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(folder)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a read-only tmpfs here: {mounted.stderr.decode().strip()}")
    yield folder
    subprocess.run(["umount", "-l", str(folder)], check=False)


def test_a_read_only_archive_still_prints_the_nagios_line(
    workspace: Workspace, read_only_archive: Path
) -> None:
    workspace.add_runbook("checks", OPEN.format(name="checks"), CHECKS, FINISH)
    result = workspace.opslib("run", "checks", "--format", "nagios", "--timeout", "60")
    assert result.returncode == 3, result.stdout + result.stderr
    assert result.stdout.startswith("OPSLIB UNKNOWN - checks on demo:"), result.stdout
    assert "stuck_jobs=3" in result.stdout, "the measured values are still in the perfdata"
    assert list(read_only_archive.iterdir()) == []


def test_a_locked_ledger_costs_the_rest_of_the_timeout_not_more(workspace: Workspace) -> None:
    workspace.reports.mkdir(parents=True, exist_ok=True)
    ledger = workspace.reports / "ledger.sqlite"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sqlite3, sys, time\n"
            f"c = sqlite3.connect({str(ledger)!r}, isolation_level=None)\n"
            "c.execute('CREATE TABLE IF NOT EXISTS hold (x)')\n"
            "c.execute('BEGIN EXCLUSIVE')\n"
            "print('held', flush=True)\n"
            "time.sleep(120)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        workspace.add_runbook("checks", OPEN.format(name="checks"), CHECKS, FINISH)
        started = time.monotonic()
        result = workspace.opslib("run", "checks", "--format", "nagios", "--timeout", "15")
        took = time.monotonic() - started
    finally:
        holder.kill()
        holder.wait()
    assert result.returncode == 3, result.stdout + result.stderr
    assert "database is locked" in result.stdout and "stuck_jobs=3" in result.stdout
    assert took < 15 * 1.1, f"took {took:.1f} s for --timeout 15"
    # the report files were written before the ledger refused, and are whole
    (page,) = [p for p in workspace.archive_files() if p.suffix == ".html"]
    assert page.read_text().rstrip().endswith("</html>")
    assert leftovers(workspace.reports) == []


def _modes(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): stat.S_IMODE(p.stat().st_mode) for p in root.rglob("*")}


def test_the_archive_is_owner_only_unless_group_access_is_asked_for(
    workspace: Workspace,
) -> None:
    result = workspace.opslib("run", "morning-check")
    assert result.returncode == 1, result.stdout + result.stderr
    modes = _modes(workspace.reports)
    assert {"ledger.sqlite", "index.html", ".locks"} <= modes.keys()
    assert any(name.endswith(".html") and "/" in name for name in modes)
    assert {name: mode for name, mode in modes.items() if mode & 0o077} == {}
    assert stat.S_IMODE(workspace.reports.stat().st_mode) == 0o700

    shared = workspace.root / "shared-archive"
    workspace.env.update(OPSLIB_GROUP_ACCESS="1", OPSLIB_REPORTS_DIR=str(shared))
    assert workspace.opslib("run", "morning-check").returncode == 1
    modes = _modes(shared)
    assert {name: mode for name, mode in modes.items() if mode & 0o007} == {}
    assert modes["ledger.sqlite"] == 0o640


def test_a_report_that_cannot_be_written_still_leaves_its_run_in_the_ledger(
    workspace: Workspace,
) -> None:
    workspace.reports.mkdir(parents=True, exist_ok=True)
    (workspace.reports / time.strftime("%Y", time.gmtime())).write_text("not a folder")
    workspace.add_runbook("checks", OPEN.format(name="checks"), CHECKS, FINISH)
    result = workspace.opslib("run", "checks", "--format", "nagios")
    assert result.returncode == 3, result.stdout + result.stderr
    assert "the report was not archived: Not a directory" in result.stdout
    with sqlite3.connect(workspace.reports / "ledger.sqlite") as ledger:
        ((status, summary, html),) = ledger.execute("SELECT status, summary, html_path FROM runs")
        archive = ledger.execute("SELECT status FROM check_results WHERE name = 'archive'")
        assert archive.fetchall() == [("UNKNOWN",)]
    assert status == "UNKNOWN" and "the report was not archived" in summary and html is None
    assert leftovers(workspace.reports) == []


def test_a_locked_postgresql_ledger_costs_the_rest_of_the_timeout_not_more(
    workspace: Workspace, server: PostgresServer
) -> None:
    url = server.fresh_database("locked_ledger")
    workspace.env["OPSLIB_LEDGER_URL"] = url.replace("postgresql://", "postgresql+psycopg://")
    workspace.add_runbook("checks", OPEN.format(name="checks"), CHECKS, FINISH)
    assert workspace.opslib("run", "checks").returncode == 1, "creates the ledger"
    with psycopg.connect(url) as holder:
        holder.execute("LOCK TABLE runs IN ACCESS EXCLUSIVE MODE")
        started = time.monotonic()
        result = workspace.opslib("run", "checks", "--format", "nagios", "--timeout", "15")
        took = time.monotonic() - started
    assert result.returncode == 3, result.stdout + result.stderr
    assert "the run was not archived" in result.stdout and "stuck_jobs=3" in result.stdout
    assert took < 15 * 1.1, f"took {took:.1f} s for --timeout 15"
