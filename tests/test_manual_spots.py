"""The spots manual as the shipped profile carries it, on the spots demo: stage times per
100K spots, error limits per stage, the pre-run checklist, the figures the manual reads
off the database, the recovery time, the ten-minute watch and the symptom index."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
import yaml
from sqlite_holders import holding
from support import PROJECT, Workspace, act

from opslib.actions.sqlite_readers import ReleaseReaders
from opslib.checks import CheckResult, judge
from opslib.checks.catalogue import catalogue
from opslib.clock import utc_now
from opslib.notebooks import applies, runbook_paths
from opslib.profiles import load_profile
from opslib.runbook import Finding, Runbook
from opslib.status import Status


def _by_name(finding: Finding) -> dict[str, CheckResult]:
    return {result.name: result for result in finding.results}


def test_stage_times_are_judged_per_100k_spots_of_the_run(spots: Path) -> None:
    """The manual's 5-10 min per 100K spots: the demo's 20,000 spots allow 2 minutes per
    stage. Stage 1 (57 s) is well inside it; stage 2, at the manual example's 7.4 spots/s
    over the 2,000 spots stage 1 left, takes 270 s: over twice the time, an incident."""
    results = _by_name(Runbook("t", load_profile("spots")).evaluate("duration_ratio"))
    stage1 = results["duration_ratio[language_blocks]"]
    stage2 = results["duration_ratio[business_rules]"]
    assert stage1.value == pytest.approx(20000 / 350 / 120, abs=0.01)
    assert stage1.status is Status.OK
    assert stage2.value == pytest.approx(2000 / 7.4 / 120, abs=0.01)
    assert stage2.status is Status.CRITICAL
    assert "for 20,000 items (10 minutes per 100,000)" in stage2.summary


def test_errors_are_judged_per_stage_at_the_manuals_limits(spots: Path) -> None:
    """Stage 1 must have no error at all: one ERROR line in its 23 lines (4.3 %) is past
    its 1 % critical line, for that stage only, and lifts the overall rate past the
    manual's 1 %."""
    runbook = Runbook("t", load_profile("spots"))
    clean = _by_name(runbook.evaluate("stage_error_rate"))
    assert {name: result.status for name, result in clean.items()} == {
        "stage_error_rate[language_blocks]": Status.OK,
        "stage_error_rate[business_rules]": Status.OK,
    }
    log = spots.parent / "logs" / "stage1_language_blocks.log"
    stamp = utc_now().strftime("%Y-%m-%dT%H:%M:%SZ")
    with log.open("a", encoding="utf-8") as file:
        file.write(f"{stamp} ERROR   Stage 1: spot 4711 has no market block\n")
    after = _by_name(runbook.evaluate("stage_error_rate"))
    assert after["stage_error_rate[language_blocks]"].status is Status.CRITICAL
    assert after["stage_error_rate[language_blocks]"].value == pytest.approx(100 / 23, abs=0.01)
    assert after["stage_error_rate[business_rules]"].status is Status.OK
    overall = runbook.evaluate("log_error_rate").results[0]
    assert 1 < overall.value < 5 and overall.status is Status.WARNING


def test_an_idle_reader_fails_the_pre_run_checklist(spots: Path) -> None:
    """The mandatory checklist: nothing but the stages may have production.db open before
    a run, even a reader that blocks nobody yet."""
    runbook = Runbook("t", load_profile("spots"))
    assert runbook.evaluate("sqlite_competitors").status is Status.OK
    with holding("idle", spots, tag="datasette") as child:
        finding = runbook.evaluate("sqlite_competitors")
        assert finding.status is Status.WARNING
        assert str(child.pid) in finding.table.to_string()


def test_the_pre_run_checklist_releases_idle_readers_but_never_a_stage(spots: Path) -> None:
    """Before a run nobody is blocked yet, so every reader is released, not only one that
    blocks a writer; a stage with the file open is left alone, and a dry run signals no one."""
    profile = load_profile("spots")
    with (
        holding("idle", spots, tag="datasette") as reader,
        holding("idle", spots, tag="/usr/bin/sqlite3") as shell,
        holding("idle", spots, tag="cli_02_assign_business_rules") as stage,
    ):
        dry = act(ReleaseReaders(profile, wait_s=5))
        assert dry.mode == "dry-run" and reader.poll() is None
        assert sorted(change["pid"] for change in dry.plan.changes) == sorted(
            [reader.pid, shell.pid]
        )
        done = act(ReleaseReaders(profile, wait_s=5), apply=True)
        reader.wait(timeout=5)
        shell.wait(timeout=5)
        assert stage.poll() is None, "a stage was signalled"
    assert done.mode == "applied" and done.applied.after_count == 0
    assert done.result.status is Status.OK


def test_the_spot_count_and_direct_response_revenue_are_shown_and_judged(spots: Path) -> None:
    runbook = Runbook("t", load_profile("spots"))
    with sqlite3.connect(spots) as connection:
        count, revenue = connection.execute(
            "SELECT count(*), sum(revenue) FILTER (WHERE customer = 'Direct Response') FROM spots"
        ).fetchone()
    connection.close()
    results = _by_name(runbook.evaluate("kpi_value"))
    assert results["kpi_value[spot_count]"].value == count == 20000
    assert results["kpi_value[direct_response_revenue]"].value == pytest.approx(revenue)
    assert {result.status for result in results.values()} == {Status.OK}
    with sqlite3.connect(spots) as connection:  # the extraction lost the customer's rows
        connection.execute("DELETE FROM spots WHERE customer = 'Direct Response'")
    connection.close()
    lost = _by_name(runbook.evaluate("kpi_value"))["kpi_value[direct_response_revenue]"]
    assert lost.value == 0 and lost.status is Status.CRITICAL


def test_the_manuals_assignment_consistency_query_finds_a_spot_without_its_block(
    spots: Path,
) -> None:
    runbook = Runbook("t", load_profile("spots"))
    name = "invariant[assignment_without_block]"
    assert _by_name(runbook.evaluate("invariant"))[name].status is Status.OK
    with sqlite3.connect(spots) as connection:
        connection.execute(
            "UPDATE spot_language_blocks SET block_id = NULL WHERE spot_id IN "
            "(SELECT spot_id FROM spot_language_blocks LIMIT 2)"
        )
    connection.close()
    broken = _by_name(runbook.evaluate("invariant"))[name]
    assert broken.value == 2 and broken.status is not Status.OK


def test_a_restore_slower_than_the_manuals_15_minutes_is_flagged() -> None:
    profile = load_profile("spots")
    settings = profile.check_settings("restore_time")
    warning, critical = catalogue()["restore_time"].thresholds(settings.warning, settings.critical)
    assert judge(10 * 60, warning, critical) is Status.OK
    assert judge(20 * 60, warning, critical) is Status.WARNING
    assert judge(40 * 60, warning, critical) is Status.CRITICAL


def test_every_symptom_of_the_manual_opens_a_runbook_that_applies_to_spots() -> None:
    profile = load_profile("spots")
    runbooks = runbook_paths()
    assert profile.manual is not None and len(profile.manual.symptoms) >= 8
    for symptom, runbook in profile.manual.symptoms.items():
        assert runbook in runbooks, symptom
        assert applies(runbooks[runbook], profile), (symptom, runbook)
    for command in profile.manual.commands.values():
        assert command.split()[2] in runbooks, command


def test_the_run_watch_runs_every_ten_minutes_and_is_quiet_between_runs(
    spots: Path, workspace: Workspace
) -> None:
    """The manual's during-run cadence is in the schedule; with no stage running, the
    watch finds nothing stuck, nobody holding the file and no stage error."""
    entries = yaml.safe_load((PROJECT / "parameters" / "schedule.yaml").read_text())
    (entry,) = [e for e in entries if e.get("runbook") == "run-watch"]
    assert (entry["profile"], entry["cron"]) == ("spots", "*/10 * * * *")
    result = workspace.opslib("run", "run-watch", "--profile", "spots", "--format", "json")
    assert result.returncode in (0, 1, 2), result.stdout + result.stderr  # never UNKNOWN (3)
    statuses = {row["name"]: row["status"] for row in json.loads(result.stdout)["results"]}
    machine = ("host_", "disk_io")  # the test machine's load and disks, not the demo's
    quiet = {name: status for name, status in statuses.items() if not name.startswith(machine)}
    assert statuses["disk_io"] in ("OK", "WARNING")  # iostat's %util, sampled
    assert quiet == {
        "stuck_stages": "OK",
        "stage_cpu": "OK",
        "stage_memory": "OK",
        "sqlite_locks": "OK",
        "sqlite_competitors": "OK",
        "stage_error_rate[language_blocks]": "OK",
        "stage_error_rate[business_rules]": "OK",
    }, statuses
    report = (workspace.root / json.loads(result.stdout)["report"]).read_text(encoding="utf-8")
    assert "Stage 2: assignment complete in 270.3s" in report  # each stage log's last lines


def test_disk_io_is_the_busiest_devices_share_of_the_sample(spots: Path) -> None:
    """The manual's `iostat -x 1 1`: per device rates over a sample, judged on how busy
    the busiest one was."""
    finding = Runbook("t", load_profile("spots")).evaluate("disk_io", window_s=0.3)
    (result,) = finding.results
    assert result.status in (Status.OK, Status.WARNING) and 0 <= result.value <= 100
    assert result.summary.startswith("busiest device ")
    assert set(finding.table.columns) == {
        "device",
        "reads_per_s",
        "writes_per_s",
        "read_mb_s",
        "write_mb_s",
        "util_pct",
    }
    assert not finding.table["device"].str.startswith("loop").any()


def test_a_221k_spot_run_of_20_minutes_is_within_the_manual(spots: Path) -> None:
    """The audit's case: the manual's 221,245-spot example taking 20 minutes was CRITICAL
    against a flat 10 minutes; scaled, it is within 10 minutes per 100K spots. The lines
    are read as the stages write them, emoji and capitals included."""
    log = spots.parent / "logs" / "stage1_language_blocks.log"
    stamp = utc_now().strftime("%Y-%m-%dT%H:%M:%SZ")
    with log.open("a", encoding="utf-8") as file:
        file.write(f"{stamp} INFO    🔧 Stage 1: 📊 Found 221,245 spots to process\n")
        file.write(f"{stamp} INFO    🔧 Stage 1: ✅ Assignment complete in 1200.0s!\n")
    results = _by_name(Runbook("t", load_profile("spots")).evaluate("duration_ratio"))
    stage1 = results["duration_ratio[language_blocks]"]
    assert stage1.value == pytest.approx(1200 / (600 * 2.21245), abs=0.01)
    assert stage1.status is Status.OK
    assert "for 221,245 items" in stage1.summary


def test_this_months_query_times_are_compared_with_a_run_a_month_ago(spots: Path) -> None:
    """The monthly benchmark comparison: each query against its time in the newest run at
    least 28 days old. A run from last week is not last month; with none, this month's
    time is the baseline (1x)."""
    from datetime import timedelta

    from opslib.archive.ledger import Ledger, RunRecord

    ledger = Ledger()
    for run_id, days_ago, timings in [
        ("month-ago", 35, {"revenue_by_month": 1e-6, "spots_in_a_year": 100.0}),
        ("last-week", 7, {"unassigned_spots": 1e-6}),
    ]:
        run = RunRecord(
            run_id, "query-benchmark", "spots", utc_now() - timedelta(days=days_ago), 1.0, "OK",
            0, "", None, None, None, "ops", "cron", "host", {},
        )  # fmt: skip
        ledger.record_run(
            run,
            [CheckResult(f"query_time[{q}]", Status.OK, s, "s") for q, s in timings.items()],
        )
    results = _by_name(Runbook("t", load_profile("spots")).evaluate("query_time_change"))
    slower = results["query_time_change[revenue_by_month]"]
    assert slower.value > 5 and slower.status is Status.CRITICAL
    assert "0 ms on " in slower.summary and "x)" in slower.summary
    faster = results["query_time_change[spots_in_a_year]"]
    assert faster.value < 0.01 and faster.status is Status.OK
    for recent in ("unassigned_spots", "direct_response_revenue"):
        baseline = results[f"query_time_change[{recent}]"]
        assert baseline.value == 1 and baseline.status is Status.OK
        assert "no run 28 days ago to compare with" in baseline.summary


def test_the_indexes_are_listed_with_the_queries_that_use_them(spots: Path) -> None:
    """`.indexes` and their use: the month queries go through spots_month, the revenue sum
    by customer reads the whole table; with the index dropped, the month queries scan too."""
    runbook = Runbook("t", load_profile("spots"))
    finding = runbook.evaluate("sqlite_index_usage")
    scans = {result.name: result.value for result in finding.results}
    assert scans == {
        "sqlite_index_usage[spots_in_a_year]": 0,
        "sqlite_index_usage[revenue_by_month]": 0,
        "sqlite_index_usage[unassigned_spots]": 0,
        "sqlite_index_usage[direct_response_revenue]": 1,
    }
    indexes = finding.tables[-1].set_index("index")
    assert indexes.loc["spots_month", "used_by"] == "spots_in_a_year, revenue_by_month"
    assert indexes.loc["spots_month", "columns"] == "broadcast_month"
    with sqlite3.connect(spots) as connection:
        connection.execute("DROP INDEX spots_month")
    connection.close()
    after = _by_name(runbook.evaluate("sqlite_index_usage"))
    assert after["sqlite_index_usage[spots_in_a_year]"].value == 1
    assert (
        after["sqlite_index_usage[revenue_by_month]"].summary
        == "revenue_by_month: SCAN spots; USE TEMP B-TREE FOR GROUP BY"
    )


def test_query_times_are_judged_per_1000_records_they_read(spots: Path, tmp_path: Path) -> None:
    """The manual's "under 1 second per 1K records": 20,000 spots allow a month query
    20 s. A query spending ~0.2 s over the 42 language blocks is past 1 s per 1,000; the
    rows a WITH clause makes up are not records of the database."""
    settings = yaml.safe_load((PROJECT / "parameters/profiles/spots.yaml").read_text())
    settings["benchmarks"] = {
        "spots_in_a_year": settings["benchmarks"]["spots_in_a_year"],
        "slow_over_blocks": "SELECT count(*) FROM language_blocks WHERE (WITH RECURSIVE "
        "c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1500000) "
        "SELECT count(*) FROM c) > 0",
    }
    path = tmp_path / "spots.yaml"
    path.write_text(yaml.safe_dump(settings))
    results = _by_name(Runbook("t", load_profile(str(path))).evaluate("query_time_per_1k"))
    month = results["query_time_per_1k[spots_in_a_year]"]
    assert month.status is Status.OK and "over 20,000 rows of spots" in month.summary
    slow = results["query_time_per_1k[slow_over_blocks]"]
    assert "over 42 rows of language_blocks)" in slow.summary
    assert slow.value > 1 and slow.status in (Status.WARNING, Status.CRITICAL)


def test_stage_cpu_is_named_by_the_manuals_bands(spots: Path) -> None:
    """80-100 % is a stage at work, about 0 % an idle one; the bands between are named
    too, so a reader tells a working stage from one waiting on the database."""
    from opslib.probes.stage_cpu import band

    assert [band(cpu, idle=1) for cpu in (95, 10, 0.2, 40)] == [
        "active processing",
        "waiting on the database",
        "idle: stuck if it lasts (stuck_stages)",
        "between the manual's bands",
    ]
    runbook = Runbook("t", load_profile("spots"))
    with (
        holding("busy", spots, tag="cli_01_assign_language_blocks") as busy,
        holding("idle", spots, tag="cli_02_assign_business_rules") as idle,
    ):
        finding = runbook.evaluate("stage_cpu", window_s=0.5)
    results = _by_name(finding)
    working = results["stage_cpu[language_blocks]"]
    assert working.value > 20 and f"pid {busy.pid}" in working.summary
    resting = results["stage_cpu[business_rules]"]
    assert resting.value < 1 and f"pid {idle.pid}" in resting.summary
    assert resting.summary.endswith("idle: stuck if it lasts (stuck_stages)")
    assert set(finding.tables[0]["pid"]) == {busy.pid, idle.pid}
