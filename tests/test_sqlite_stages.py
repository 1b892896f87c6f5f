"""The spots pipeline's stages: coverage, formats, and stuck stage processes, for real."""

from __future__ import annotations

import time
from pathlib import Path

import psutil
import pytest
import yaml
from sqlite_holders import holding
from support import PROJECT, Workspace

from opslib.probes.sqlite_locks import scan
from opslib.profiles import load_profile
from opslib.runbook import Runbook
from opslib.status import Status


def _spots_profile(tmp_path: Path, **stages: object) -> Path:
    """The spots profile with some `stages:` settings changed."""
    data = yaml.safe_load((PROJECT / "parameters" / "profiles" / "spots.yaml").read_text())
    data["stages"].update(stages)
    path = tmp_path / "spots.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _wait_for_lock(pid: int, lock: str) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        holders = scan(load_profile("spots"))
        if lock in set(holders[holders["pid"] == pid]["lock"]):
            return
        time.sleep(0.05)
    raise AssertionError(f"pid {pid} never held {lock}")


def test_stage_waiting_to_commit_behind_a_reader_is_stuck_and_names_the_reader(
    spots: Path, tmp_path: Path
) -> None:
    profile = load_profile(str(_spots_profile(tmp_path, stuck_after="1 s")))
    with (
        holding("reader", spots, tag="datasette") as reader,
        holding("stage-commit", spots, tag="cli_02_assign_business_rules") as stage,
    ):
        _wait_for_lock(stage.pid, "PENDING")
        time.sleep(1.2)
        finding = Runbook("t", profile).evaluate("stuck_stages", window_s=0.5)
    assert finding.status is Status.CRITICAL
    row = finding.table[finding.table["pid"] == stage.pid].iloc[0]
    assert "CPU" in row["stuck_signs"]
    assert f"pid {reader.pid}" in row["blocked_by"] and "SHARED" in row["blocked_by"]
    assert f"waiting on pid {reader.pid}" in finding.results[0].summary


def test_a_stage_at_work_is_not_stuck(spots: Path, tmp_path: Path) -> None:
    profile_path = _spots_profile(tmp_path, stuck_after="1 s")
    data = yaml.safe_load(profile_path.read_text())
    data["stages"]["steps"]["language_blocks"].pop("progress_column")
    profile_path.write_text(yaml.safe_dump(data))
    with holding("busy", spots, tag="cli_01_assign_language_blocks") as stage:
        time.sleep(1.2)
        finding = Runbook("t", load_profile(str(profile_path))).evaluate(
            "stuck_stages", window_s=0.5
        )
    assert finding.status is Status.OK, finding.results[0].summary
    assert list(finding.table["pid"]) == [stage.pid]
    assert finding.table["cpu_pct"].iloc[0] > 20


def test_a_young_stage_process_is_given_time(spots: Path) -> None:
    with holding("idle", spots, tag="cli_02_assign_business_rules"):
        finding = Runbook("t", load_profile("spots")).evaluate("stuck_stages", window_s=0.2)
    assert finding.status is Status.OK
    assert finding.table["stuck_signs"].tolist() == [""]


def test_invalid_broadcast_months_are_counted_and_sampled(spots: Path) -> None:
    (finding,) = [Runbook("t", load_profile("spots")).evaluate("format_violations")]
    result = finding.results[0]
    assert result.name == "format_violations[broadcast_month]"
    assert result.status is Status.WARNING and result.value == 7
    assert set(finding.table["value"]) <= {
        "2024-03-01",
        "2024-03-01 00:00:00",
        "2025-01-01",
        "2024-11-01 00:00:00",
    }
    assert finding.table["rows"].sum() == 7 and finding.table["example_spot_id"].notna().all()


def test_stage_coverage_is_cumulative_and_judged_per_stage(spots: Path) -> None:
    import sqlite3

    with sqlite3.connect(spots) as connection:  # stage 1 lost a third of its work
        connection.execute("UPDATE spots SET language_block_id = NULL WHERE spot_id % 3 = 0")
    connection.close()
    finding = Runbook("t", load_profile("spots")).evaluate("stage_coverage")
    by_stage = {result.name: result for result in finding.results}
    first = by_stage["stage_coverage[language_blocks]"]
    second = by_stage["stage_coverage[business_rules]"]
    assert first.status is Status.CRITICAL and 55 < first.value < 65  # critical below 70 %
    assert second.value > first.value
    assert second.critical == "80:"


def test_morning_check_on_spots_reports_stages_formats_and_locks(
    spots: Path, workspace: Workspace
) -> None:
    result = workspace.opslib("run", "morning-check", "--profile", "spots")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "format_violations[broadcast_month]" in result.stdout
    (report,) = workspace.reports.rglob("*morning-check*.html")
    html = report.read_text()
    for check in (
        "stage_coverage[language_blocks]",
        "sqlite_locks",
        "stuck_stages",
        "database_integrity",
    ):
        assert check in html


def test_a_busy_stage_whose_log_and_rows_stopped_moving_is_stuck(
    spots: Path, tmp_path: Path
) -> None:
    """CPU alone is not enough: a stage spinning without logging or stamping rows is hung."""
    import os

    log = spots.parent / "logs" / "stage1_language_blocks.log"
    twenty_minutes_ago = time.time() - 20 * 60
    os.utime(log, (twenty_minutes_ago, twenty_minutes_ago))
    profile = load_profile(str(_spots_profile(tmp_path, stuck_after="1 s", silent_after="1 s")))
    with holding("busy", spots, tag="cli_01_assign_language_blocks") as stage:
        time.sleep(1.5)
        finding = Runbook("t", profile).evaluate("stuck_stages", window_s=0.5)
    assert finding.status is Status.CRITICAL
    row = finding.table[finding.table["pid"] == stage.pid].iloc[0]
    assert "log silent 20 min" in row["stuck_signs"]
    assert "no row stamped for" in row["stuck_signs"]  # none since this process started
    assert "CPU" not in row["stuck_signs"]


def test_a_wrapper_shell_and_an_editor_are_not_stage_processes(spots: Path) -> None:
    """`sh -c "python cli_02_..."` only waits for its child; `vi cli_02_...py` is a person."""
    import subprocess
    import sys

    holder = Path(__file__).with_name("sqlite_holders.py")
    wrapper = subprocess.Popen(
        ["sh", "-c", f"{sys.executable} {holder} idle {spots} cli_02_assign_business_rules; true"],
        stdout=subprocess.PIPE,
        text=True,
    )
    editor = subprocess.Popen(["sleep", "60", "cli_02_assign_business_rules.py"])
    try:
        assert wrapper.stdout.readline().strip() == "ready"
        finding = Runbook("t", load_profile("spots")).evaluate("stuck_stages", window_s=0.2)
        (stage,) = [child.pid for child in psutil.Process(wrapper.pid).children()]
    finally:
        for process in (wrapper, editor):
            for child in psutil.Process(process.pid).children(recursive=True):
                child.kill()
            process.kill()
            process.wait(timeout=10)
    assert finding.table["pid"].tolist() == [stage]


def test_an_empty_table_has_no_format_violations_and_no_coverage(spots: Path) -> None:
    import sqlite3

    with sqlite3.connect(spots) as connection:
        connection.execute("DELETE FROM spots")
    connection.close()
    runbook = Runbook("t", load_profile("spots"))
    formats = runbook.evaluate("format_violations")
    coverage = runbook.evaluate("stage_coverage")
    assert formats.status is Status.OK and formats.results[0].value == 0
    assert coverage.status is Status.UNKNOWN and "spots is empty" in coverage.results[0].summary


def test_stage_durations_are_read_from_their_log_lines(spots: Path) -> None:
    finding = Runbook("t", load_profile("spots")).evaluate("duration_ratio")
    by_stage = {result.name: result for result in finding.results}
    stage2 = by_stage["duration_ratio[business_rules]"]
    # the demo's stage 2 log: 2,000 spots at 7.4 spots/s, against the manual's 10 minutes
    # per 100K spots scaled to the 20,000 spots stage 1's log says the data set holds
    assert stage2.value == pytest.approx(2000 / 7.4 / 120, abs=0.01)
    assert stage2.status is Status.CRITICAL  # the demo's stage 2 is slow on purpose


def test_weekly_review_measures_table_growth_against_the_run_a_week_ago(
    spots: Path, workspace: Workspace
) -> None:
    import sqlite3

    first = workspace.opslib("run", "weekly-review", "--profile", "spots")
    assert first.returncode == 0, first.stdout + first.stderr
    with sqlite3.connect(workspace.reports / "ledger.sqlite") as ledger:  # a week passes
        ledger.execute("UPDATE runs SET started_at = datetime(started_at, '-8 days')")
    with sqlite3.connect(spots) as connection:
        connection.executemany(
            "INSERT INTO spots (broadcast_month, air_date, market, customer, revenue) "
            "VALUES ('Nov-26', '2026-11-20', 'NYC', 'Acme Auto', 100)",
            [()] * 500,
        )
    connection.close()
    second = workspace.opslib("run", "weekly-review", "--profile", "spots")
    assert second.returncode == 0, second.stdout + second.stderr
    report = max(workspace.reports.rglob("*weekly-review*.html"), key=lambda p: p.stat().st_mtime)
    text = report.read_text()
    assert "spots: 20,500 rows; +500 (+2.5%) since" in text
    assert "language_blocks: 42 rows; +0 (+0.0%) since" in text
