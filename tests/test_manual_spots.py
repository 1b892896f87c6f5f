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
