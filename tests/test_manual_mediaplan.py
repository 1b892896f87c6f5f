"""The media-plan manual carried by its profile (issue #18): the manual's three log
folders, large inputs, the batch reports' unmapped columns and timing, the escalation
levels, notifications off until set, the monthly log and configuration upkeep, and the
`manual:` section's runbooks and commands. One end-to-end run (high-error-rate), the rest
in-process on a copy of the demo."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import time
from pathlib import Path

import pytest
from support import Workspace

from opslib.actions import execute
from opslib.actions.cleanup import Cleanup
from opslib.actions.diagnostics import DiagnosticPackage
from opslib.actions.files import BackupFiles
from opslib.alerting.notify import switched_off_reason
from opslib.alerting.severity import classify
from opslib.archive.ledger import Ledger
from opslib.checks import CheckResult
from opslib.cli import build_parser
from opslib.context import RunContext
from opslib.demo import mediaplan as mediaplan_demo_module
from opslib.demo.mediaplan import COLUMNS, MAPPER_LOG, MONITOR_LOG, write_workbook
from opslib.notebooks import applies, find_runbook
from opslib.probes import NoHistory
from opslib.probes.logs import error_patterns, error_rate, log_files
from opslib.probes.workbook_outputs import batch_completion, batch_reports, output_space
from opslib.probes.workbooks import api_key, conventions, folders, reach_data
from opslib.profiles import load_profile
from opslib.runbook import Runbook
from opslib.status import Status


@pytest.fixture(scope="session")
def mediaplan_demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo, written in-process once (no interpreter to start)."""
    data = tmp_path_factory.mktemp("mediaplan-manual")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OPSLIB_DATA_DIR", str(data))
        return mediaplan_demo_module.create()


@pytest.fixture
def mediaplan(workspace: Workspace, mediaplan_demo: Path) -> Path:
    """This test's own copy of the demo folders (mtimes kept)."""
    shutil.copytree(mediaplan_demo, workspace.data / "mediaplan")
    return workspace.data / "mediaplan"


def test_the_batch_reports_name_the_unmapped_columns_and_the_batch_timing(
    workspace: Workspace, mediaplan: Path
) -> None:
    found = batch_reports(load_profile("mediaplan"))
    assert "coverage 92.5% (unmapped columns: UNIQUES_REACH, FREQUENCY)" in found.summary
    table = found.table
    comprehensive = table.loc["batch_20261120_COMPREHENSIVE_REPORT.txt"]
    assert comprehensive["unmapped_columns"] == "UNIQUES_REACH, FREQUENCY"
    performance = table.loc["batch_20261120_PERFORMANCE_REPORT.txt"]
    assert performance["timing"] == "total 1030 s; slowest DELIVERED_sensodyne_20261120.xlsx"
    assert performance["looks_off"] == ""  # timing alone is no problem
    assert not table.isna().any().any()  # a report without coverage shows none, not NaN
    assert table.loc["batch_20261120_VALIDATION_REPORT.txt", "errors"] == 2

    report = mediaplan / "output" / "batch_20261120_COMPREHENSIVE_REPORT.txt"
    report.write_text("Mapping coverage: 100%\nUnmapped columns: FREQUENCY\n")
    assert "(unmapped columns: FREQUENCY)" in batch_reports(load_profile("mediaplan")).summary


def test_an_input_over_100_mb_is_flagged_for_the_large_file_procedure(
    workspace: Workspace, mediaplan: Path
) -> None:
    profile = load_profile("mediaplan")
    assert "over 100 MB" not in conventions(profile).summary
    big = mediaplan / "input" / "DELIVERED_acme_20261121.xlsx"
    with big.open("wb") as sparse:
        sparse.truncate(101_000_000)  # sparse: no disk used, only the size is read
    found = conventions(profile)
    problem = found.table.loc[big.name, "problem"]
    assert problem.startswith("101 MB, over 100 MB: process it platform by platform")
    assert found.value == 3  # the misnamed input and the lock file as before, and this one


def test_the_manuals_three_log_folders_are_read_and_the_last_batch_is_recent(
    workspace: Workspace, mediaplan: Path
) -> None:
    profile = load_profile("mediaplan")
    read = {path.relative_to(mediaplan).as_posix() for path in log_files(profile)}
    assert read == {"logs/excel_processor.log", MONITOR_LOG, MAPPER_LOG}
    # the demo's last batch is five hours old at any hour: high-error-rate's 6 h sees it
    recent = error_rate(profile, window_hours=6)
    assert recent.value == pytest.approx(100 * 3 / 15, abs=0.1)


def test_high_error_rate_on_the_demo_judges_the_last_batch(
    workspace: Workspace, mediaplan: Path
) -> None:
    """Its 6 h window once held no line of the demo (written at 02:00): UNKNOWN, exit 3."""
    profile = load_profile("mediaplan")
    assert applies(find_runbook("high-error-rate"), profile)
    (result,) = Runbook("t", profile).evaluate("log_error_rate", window_hours=6).results
    assert result.status is Status.CRITICAL, result.summary
    assert "3 error(s) in 15 log line(s) in the last 6 h" in result.summary


def test_morning_check_on_the_mediaplan_demo_reads_the_daily_checklist(
    workspace: Workspace, mediaplan: Path
) -> None:
    """The manual's daily tasks (completion, error logs, output quality) in the morning
    check, and no step the manual needs among those that do not apply."""
    run = workspace.opslib("run", "morning-check", "--profile", "mediaplan")
    assert run.returncode == 2, run.stdout + run.stderr
    assert "CRITICAL output_files[missing]: 2 input(s) with no output" in run.stdout
    assert "(unmapped columns: UNIQUES_REACH, FREQUENCY)" in run.stdout
    assert "CRITICAL log_error_rate: 3 error(s) in 15 log line(s)" in run.stdout
    assert "incident P3" in run.stdout  # the operators' level: missing outputs, the rules
    (page,) = [p for p in workspace.archive_files() if p.suffix == ".html"]
    html = page.read_text()
    assert "skipped" not in html.lower()
    absent = re.search(r"Not applicable to profile mediaplan: ([^<]*)", html).group(1)
    assert not re.search(r"output_|batch_reports|log_|disk_free|host_memory", absent)


def test_the_manual_section_opens_runbooks_that_apply_and_commands_that_parse() -> None:
    profile = load_profile("mediaplan")
    manual = profile.manual
    assert manual is not None and manual.source == "media-plan-files.md"
    for symptom, runbook in manual.symptoms.items():
        assert applies(find_runbook(runbook), profile), symptom
    parser = build_parser()
    for alias, command in manual.commands.items():
        words = shlex.split(command)
        assert words[0] == "opslib", alias
        parsed = parser.parse_args(words[1:])
        if getattr(parsed, "runbook", None) and words[1] == "run":
            assert applies(find_runbook(parsed.runbook), profile), alias


@pytest.mark.parametrize(
    ("check", "status", "level"),
    [
        ("output_files[rows]", Status.CRITICAL, "P1"),  # data corruption: the developers
        ("file_processing_ratio[x.xlsx]", Status.CRITICAL, "P2"),  # a slowdown: support
        ("log_unseen_patterns", Status.WARNING, "P2"),  # a new kind of error
        ("mapping_coverage", Status.CRITICAL, "P3"),  # the operators' own rules
        ("input_conventions", Status.WARNING, "P3"),
    ],
)
def test_severity_follows_the_manuals_escalation_levels(
    check: str, status: Status, level: str
) -> None:
    results = [CheckResult("disk_free[output]", Status.OK), CheckResult(check, status)]
    severity = classify(results, load_profile("mediaplan").severity)
    assert severity is not None and severity.level == level


def test_notifications_stay_off_until_their_variables_are_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("MEDIAPLAN_WEBHOOK_URL", "MEDIAPLAN_SMTP_HOST"):
        monkeypatch.delenv(name, raising=False)
    channels = load_profile("mediaplan").notify.channels
    assert {name: switched_off_reason(load_profile("mediaplan"), channel)
            for name, channel in channels.items()} == {
        "ops": "its address is set to nothing", "mail": "its mail server is set to nothing"
    }  # fmt: skip
    monkeypatch.setenv("MEDIAPLAN_WEBHOOK_URL", "http://127.0.0.1:9/hook")
    profile = load_profile("mediaplan")
    assert switched_off_reason(profile, profile.notify.channels["ops"]) == ""


def test_the_monthly_upkeep_keeps_30_days_of_logs_and_backs_up_the_configuration(
    workspace: Workspace, mediaplan: Path
) -> None:
    old = mediaplan / MAPPER_LOG
    rotated = old.with_name(old.name + ".1")
    rotated.write_text("2026-10-01 02:00:00,000 - simple_llm_mapper - INFO - done\n")
    forty_days = time.time() - 40 * 86400
    os.utime(rotated, (forty_days, forty_days))
    profile = load_profile("mediaplan")
    plan = Cleanup(profile, "mapper_logs").plan()
    assert [Path(change["file"]).name for change in plan.changes] == [rotated.name]
    assert not Cleanup(profile, "logs").plan().changes  # the live log is recent
    assert rotated.exists()  # a plan changes nothing

    backup = BackupFiles(profile).plan()
    assert [Path(row["file"]).name for row in backup.changes] == ["client_mapping_rules.json"]


def test_the_checklist_reads_the_folders_the_room_for_outputs_and_the_api_key(
    workspace: Workspace, mediaplan: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    profile = load_profile("mediaplan")
    assert folders(profile).value == 0
    room = output_space(profile)
    assert room.value is not None and room.value > 3  # free space over 3x the outputs
    assert api_key(profile).value == 1  # not set: the manual's "API key error"
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")
    assert api_key(profile).value == 0

    shutil.rmtree(mediaplan / "output")
    missing = folders(profile)
    assert missing.value == 1 and "does not exist" in missing.summary  # "file not found"


def test_the_monthly_archive_takes_only_the_outputs_past_30_days(
    workspace: Workspace, mediaplan: Path
) -> None:
    profile = load_profile("mediaplan")
    outcome = execute(
        Cleanup(profile, "outputs"), RunContext.current("cleanup", "mediaplan"), Ledger, apply=True
    )
    assert outcome.mode == "applied" and outcome.result.status is Status.OK, outcome.message
    archived = sorted(path.name for path in (mediaplan / "archive" / "output").iterdir())
    assert len(archived) == 2 and all(name.endswith("_MAPPED.xlsx.gz") for name in archived)
    assert (mediaplan / "output" / "PLANNED_acme_20261120_MAPPED.xlsx").exists()


def test_the_error_patterns_come_from_every_log_folder(
    workspace: Workspace, mediaplan: Path
) -> None:
    found = error_patterns(load_profile("mediaplan"), window_hours=24)
    text = found.table.to_string() if found.table is not None else found.summary
    assert "extraction step failed" in text  # the workflow monitor's folder
    assert "no mapping rule for client Globex" in text  # logs/excel_processor.log


def test_the_diagnostic_package_takes_the_main_scripts_logs_as_the_manual_does(
    workspace: Workspace, mediaplan: Path
) -> None:
    plan = DiagnosticPackage(load_profile("mediaplan"), NoHistory()).plan()
    included = plan.context[plan.context["included"]]
    names = {Path(str(source)).name for source in included["source"]}
    assert {"simple_llm_mapper.log", "workflow_monitor.log", "excel_processor.log"} <= names
    assert "batch_20261120_PERFORMANCE_REPORT.txt" in names


def test_the_processing_log_must_end_with_the_batch_completed(
    workspace: Workspace, mediaplan: Path
) -> None:
    """The manual's "check completion" (tail the processing log): the demo's batch logged
    its end; a run that started after it and stopped part way has no such line."""
    profile = load_profile("mediaplan")
    (result,) = Runbook("t", profile).evaluate("batch_completion").results
    assert result.status is Status.OK, result.summary
    assert "batch completed: 5 of 7 file(s) processed" in result.summary
    with (mediaplan / "logs" / "excel_processor.log").open("a") as log:
        log.write(
            "2026-11-23 06:00:00,000 - excel_processor - INFO - "
            "processed PLANNED_acme_20261120.xlsx (1.20 MB) in 480.0 s\n"
        )
    found = batch_completion(profile)
    assert found.value == 1
    assert "1 file(s) processed after its last completion line" in found.summary
    (mediaplan / "logs" / "excel_processor.log").write_text("")
    assert "no line saying the run completed" in batch_completion(profile).summary
    (result,) = Runbook("t", profile).evaluate("batch_completion").results
    assert result.status is Status.WARNING


def test_the_reach_and_frequency_sheets_with_no_reach_are_named(
    workspace: Workspace, mediaplan: Path
) -> None:
    """The manual's "R&F data missing": the demo's Sensodyne delivery has three platforms
    at zero or blank reach; an input without an *_RF sheet is named too."""
    profile = load_profile("mediaplan")
    (result,) = Runbook("t", profile).evaluate("reach_data").results
    assert result.status is Status.WARNING, result.summary
    assert result.summary.startswith("1 of 6 input(s) with reach and frequency data missing")
    assert "DELIVERED_sensodyne_20261120.xlsx: 3 of 4 row(s) with no PLATFORM" in result.summary
    write_workbook(mediaplan / "input" / "PLANNED_acme_20261120.xlsx", "Data", COLUMNS, [])
    found = reach_data(profile)
    assert found.value == 2
    assert found.table.loc["PLANNED_acme_20261120.xlsx", "problem"] == "no sheet named *_RF"
