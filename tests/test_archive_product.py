"""The archive as a product: the status board (since when, strips, trends, links),
history filters, one run's checks, and retention as a plan that keeps the ledger and the
files consistent. Runs are recorded straight into a real ledger with real report files."""

from __future__ import annotations

import gzip
import re
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from support import Workspace

from opslib.archive.ledger import Ledger, RunRecord
from opslib.checks import CheckResult
from opslib.status import Status

NOW = datetime.now(UTC).replace(tzinfo=None, microsecond=0)


def _record(
    ledger: Ledger,
    reports: Path,
    run_id: str,
    runbook: str,
    status: str,
    started: datetime,
    value: float | None = None,
    report: bool = True,
) -> None:
    """One run with its report and notebook files, as the runner leaves them (or, with
    `report=False`, a run that died before producing any)."""
    folder = reports / f"{started:%Y/%m/%d}"
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"{runbook}--demo--{started:%H%M%S}-{run_id}"
    (folder / f"{stem}.html").write_text(f"<html>{run_id}</html>")
    (folder / f"{stem}.ipynb").write_text('{"cells": []}' + " " * 2000)
    ledger.record_run(
        RunRecord(
            run_id=run_id, runbook=runbook, profile="demo", started_at=started, duration_s=2.0,
            status=status, exit_code=int(Status[status]), summary=f"{status} summary",
            notebook_path=f"{started:%Y/%m/%d}/{stem}.ipynb" if report else None,
            html_path=f"{started:%Y/%m/%d}/{stem}.html" if report else None, git_sha="abc", os_user="t",
            run_by="", host="h", parameters={},
        ),
        [CheckResult(name="queue_depth", status=Status[status], value=value, unit="jobs")],
    )  # fmt: skip


@pytest.fixture
def ledger(workspace: Workspace) -> Ledger:
    workspace.reports.mkdir(parents=True, exist_ok=True)
    return Ledger(f"sqlite:///{workspace.reports / 'ledger.sqlite'}")


def test_the_board_says_what_is_red_since_when_with_strips_and_trends(
    workspace: Workspace, ledger: Ledger
) -> None:
    statuses = ["OK", "OK", "WARNING", "CRITICAL", "CRITICAL"]
    for number, status in enumerate(statuses):
        started = NOW - timedelta(hours=5 - number)
        _record(
            ledger, workspace.reports, f"q{number}", "queue-check", status, started, 10.0 * number
        )
    for number in range(3):
        _record(ledger, workspace.reports, f"m{number}", "morning-check", "OK",
                NOW - timedelta(days=3 - number), 1.0)  # fmt: skip
    result = workspace.opslib("index")
    assert result.returncode == 0, result.stderr
    page = (workspace.reports / "index.html").read_text()
    board = page.split("<h2>Recent runs</h2>")[0]
    rows = board.split('<tr class="board-row">')[1:]
    assert "queue-check" in rows[0] and "morning-check" in rows[1]  # worst first
    since = (NOW - timedelta(hours=2)).strftime("%Y-%m-%d %H:%M")
    assert since in rows[0]  # CRITICAL since the first of the two CRITICAL runs
    assert (NOW - timedelta(days=3)).strftime("%Y-%m-%d %H:%M") in rows[1]  # OK since ever
    strip = re.findall(r'<a class="(\w+)" title="[^"]*" href="([^"]+)"', rows[0])
    assert [status for status, _ in strip] == statuses  # oldest to newest
    assert all((workspace.reports / href).exists() for _, href in strip)
    points = re.search(r'<polyline[^>]*points="([^"]+)"', rows[0]).group(1).split()
    assert len(points) == 5 and float(points[0].split(",")[1]) > float(points[-1].split(",")[1])
    assert not re.search(r'(src|href)="https?://', page)  # self-contained


def test_history_filters_and_show_prints_one_run(workspace: Workspace, ledger: Ledger) -> None:
    _record(
        ledger, workspace.reports, "aaa111", "queue-check", "WARNING", NOW - timedelta(days=3), 4
    )
    _record(ledger, workspace.reports, "aab222", "queue-check", "OK", NOW - timedelta(hours=1), 1)
    _record(
        ledger, workspace.reports, "bbb333", "morning-check", "WARNING", NOW - timedelta(hours=2)
    )
    recent_warnings = workspace.opslib("history", "--status", "WARNING", "--since", "1 day")
    assert recent_warnings.stdout.count("\n") == 1 and "bbb333" in recent_warnings.stdout
    older = workspace.opslib("history", "--runbook", "queue-check", "--until", "1 day")
    assert "aaa111" in older.stdout and "aab222" not in older.stdout
    shown = workspace.opslib("show", "aab")
    assert shown.returncode == 0 and "queue_depth" in shown.stdout and "1 jobs" in shown.stdout
    ambiguous = workspace.opslib("show", "aa")
    assert ambiguous.returncode == 3 and "ambiguous" in ambiguous.stderr
    assert workspace.opslib("show", "zzz").stderr.strip() == "opslib: no run 'zzz' in the ledger"
    warned = workspace.opslib("show", "aaa111")
    assert warned.returncode == 1  # the run's own status


def _policy(workspace: Workspace) -> Path:
    policy = workspace.root / "retention.yaml"
    policy.write_text("keep_all: 30 days\nkeep_daily: 365 days\ncompress_notebooks_after: 7 days\n")
    return policy


def _files(workspace: Workspace) -> set[str]:
    return {
        str(path.relative_to(workspace.reports))
        for path in workspace.reports.rglob("*")
        if path.is_file()
        and path.suffix in {".html", ".ipynb", ".gz"}
        and path.name != "index.html"
    }


def test_prune_keeps_the_worst_run_of_each_old_day_and_the_ledger_consistent(
    workspace: Workspace, ledger: Ledger
) -> None:
    day = NOW.replace(hour=12, minute=0, second=0) - timedelta(days=100)
    _record(ledger, workspace.reports, "old-ok", "queue-check", "OK", day - timedelta(hours=3))
    _record(
        ledger, workspace.reports, "old-crit", "queue-check", "CRITICAL", day - timedelta(hours=2)
    )
    _record(ledger, workspace.reports, "old-warn", "queue-check", "WARNING", day)
    _record(ledger, workspace.reports, "old-dead", "queue-check", "UNKNOWN",
            day + timedelta(hours=1), report=False)  # fmt: skip
    _record(
        ledger, workspace.reports, "ancient", "queue-check", "CRITICAL", NOW - timedelta(days=400)
    )
    _record(ledger, workspace.reports, "week", "queue-check", "OK", NOW - timedelta(days=10))
    _record(ledger, workspace.reports, "fresh", "queue-check", "OK", NOW - timedelta(days=1))
    policy = _policy(workspace)
    before = _files(workspace)

    dry = workspace.opslib("archive", "prune", "--policy", str(policy))
    # the day's worst run with a report is kept, not the UNKNOWN that left none
    assert "delete 4 run(s)" in dry.stdout and "gzip 2 notebook(s)" in dry.stdout, dry.stdout
    assert _files(workspace) == before  # a plan changes nothing
    plan_hash = re.search(r"plan (\w{12})", dry.stdout).group(1)
    stale = workspace.opslib("archive", "prune", "--policy", str(policy), "--approve", "0" * 12)
    assert stale.returncode == 3 and _files(workspace) == before

    applied = workspace.opslib("archive", "prune", "--policy", str(policy), "--approve", plan_hash)
    assert "4 run(s) and 6 file(s) removed, 2 notebook(s) gzipped" in applied.stdout, applied.stdout
    with sqlite3.connect(workspace.reports / "ledger.sqlite") as connection:
        kept = dict(connection.execute("SELECT run_id, notebook_path FROM runs"))
        orphans = connection.execute(
            "SELECT count(*) FROM check_results WHERE run_id NOT IN (SELECT run_id FROM runs)"
        ).fetchone()[0]
        audited = connection.execute(
            "SELECT outcome FROM audit WHERE action = 'archive_prune'"
        ).fetchall()
    assert set(kept) == {"old-crit", "week", "fresh"} and orphans == 0 and audited == [("applied",)]
    assert kept["old-crit"].endswith(".ipynb.gz") and kept["fresh"].endswith(".ipynb")
    for run_id, notebook in kept.items():  # every path the ledger names exists
        assert (workspace.reports / notebook).exists(), run_id
    assert gzip.decompress((workspace.reports / kept["week"]).read_bytes()).startswith(b'{"cells"')
    remaining = _files(workspace)
    assert not any(
        "old-ok" in name or "ancient" in name or "old-warn" in name for name in remaining
    )
    again = workspace.opslib("archive", "prune", "--policy", str(policy))
    assert "delete 0 run(s)" in again.stdout and "gzip 0 notebook(s)" in again.stdout


def test_a_bad_retention_policy_is_one_line(workspace: Workspace, ledger: Ledger) -> None:
    _record(ledger, workspace.reports, "x1", "queue-check", "OK", NOW)
    policy = workspace.root / "bad.yaml"
    policy.write_text("keep_all: 40 days\nkeep_daily: 10 days\n")
    result = workspace.opslib("archive", "prune", "--policy", str(policy))
    assert result.returncode == 3 and "keep_daily must be at least keep_all" in result.stderr
    assert "Traceback" not in result.stderr
