"""The media-plan pipeline of Excel files: real workbooks written by openpyxl, a corrupt
one, an unmapped client, outputs missing or too small, a retry list, and a diagnostic
package that carries no secret."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from support import PROJECT, Workspace

from opslib.actions.diagnostics import DiagnosticPackage, escalation_level, mask_literal_secrets
from opslib.clock import utc_now
from opslib.probes import NoHistory
from opslib.probes.workbook_outputs import outputs, processing_ratio
from opslib.probes.workbooks import inputs, mapping_coverage
from opslib.profiles import load_profile

CORRUPT = "DELIVERED_initech_20261120.xlsx"
FAILED = {
    "DELIVERED_globex_20261120.xlsx",  # unmapped client: never produced
    CORRUPT,  # never produced
    "DELIVERED_sensodyne_20261120.xlsx",  # output under 100 KB
    "DELIVERED_acme_20261120.xlsx",  # output older than its re-delivered input
}
CANARY = "sk-ant-canary-7f3e9a0c5d1b2468"


@pytest.fixture(scope="session")
def mediaplan_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("mediaplan-template")
    env = {**os.environ, "OPSLIB_DATA_DIR": str(data)}
    subprocess.run(
        [sys.executable, "-m", "opslib", "demo", "mediaplan"],
        env=env,
        check=True,
        capture_output=True,
    )
    return data / "mediaplan"


@pytest.fixture
def mediaplan(workspace: Workspace, mediaplan_template: Path) -> Path:
    """This test's own copy of the demo folders (mtimes kept); returns the folder."""
    shutil.copytree(mediaplan_template, workspace.data / "mediaplan")
    return workspace.data / "mediaplan"


def _tree(folder: Path) -> dict[str, str]:
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def test_the_checklist_names_the_corrupt_file_and_the_unmapped_client(
    workspace: Workspace, mediaplan: Path
) -> None:
    run = workspace.opslib("run", "pre-processing-checklist", "--profile", "mediaplan")
    assert run.returncode == 2, run.stdout + run.stderr
    assert (
        f"CRITICAL input_workbooks: 1 of 7 input(s) unusable: {CORRUPT}: unreadable" in run.stdout
    )
    assert "CRITICAL mapping_coverage: no mapping rule for client(s) Globex" in run.stdout
    assert "is open in Excel by operator" in run.stdout


def test_a_corrupt_workbook_is_named_and_the_rest_still_checked(
    workspace: Workspace, mediaplan: Path
) -> None:
    found = inputs(load_profile("mediaplan"))
    assert found.value == 1
    table = found.table
    assert table.loc[CORRUPT, "problem"].startswith("unreadable: BadZipFile")
    assert table.loc["PLANNED_acme_20261120.xlsx", "rows"] == 4200
    assert table.drop(index=CORRUPT)["problem"].eq("").all()


def test_a_missing_column_is_named(workspace: Workspace, mediaplan: Path) -> None:
    from opslib.demo.mediaplan import write_workbook

    write_workbook(
        mediaplan / "input" / "PLANNED_acme_20261120.xlsx",
        "Data",
        ["CLIENT", "PLATFORM", "SPEND"],
        [["Acme", "Meta", 12.5]],
    )
    table = inputs(load_profile("mediaplan")).table
    assert table.loc["PLANNED_acme_20261120.xlsx", "problem"] == (
        "sheet 'Data' lacks column(s) IMPRESSIONS"
    )


def test_a_client_gains_its_mapping_rule(workspace: Workspace, mediaplan: Path) -> None:
    profile = load_profile("mediaplan")
    assert (
        mapping_coverage(profile).table.loc["Globex", "files"] == "DELIVERED_globex_20261120.xlsx"
    )
    rules = mediaplan / "config" / "client_mapping_rules.json"
    rules.write_text(rules.read_text().replace('"Acme": {', '"globex": {"code": "GLX"}, "Acme": {'))
    assert mapping_coverage(profile).value == 0


def test_outputs_under_the_floor_are_listed(workspace: Workspace, mediaplan: Path) -> None:
    by_kind = {metric.label: metric for metric in outputs(load_profile("mediaplan"))}
    assert by_kind["small"].value == 1
    assert "DELIVERED_sensodyne_20261120.xlsx" in by_kind["small"].summary
    assert by_kind["missing"].value == 2
    table = by_kind["missing"].table
    assert table.loc["DELIVERED_sensodyne_20261120.xlsx", "size_kb"] < 100
    assert set(table[table["problem"] != ""].index) == FAILED


def test_the_retry_list_holds_exactly_the_failed_inputs(
    workspace: Workspace, mediaplan: Path
) -> None:
    before = _tree(mediaplan)
    dry = workspace.opslib("run", "partial-failure-recovery", "--profile", "mediaplan")
    assert "dry run: would list 4 failed input(s)" in dry.stdout, dry.stdout + dry.stderr
    assert _tree(mediaplan) == before  # a plan changes nothing

    run = workspace.opslib(
        "run", "partial-failure-recovery", "--profile", "mediaplan", "-p", "apply=true", "--by", "t"
    )
    assert "applied plan" in run.stdout, run.stdout + run.stderr
    (retry_list,) = (mediaplan / "output").glob("retry-*.txt")
    lines = retry_list.read_text().splitlines()
    listed = [Path(line).name for line in lines if not line.startswith("#")]
    assert sorted(listed) == sorted(FAILED)
    command = next(line for line in lines if line.startswith("# re-run: "))
    assert "run_complete_workflow.py --only" in command and CORRUPT in command
    (aside,) = (mediaplan / "output").glob("failed-*")
    assert sorted(path.name for path in aside.iterdir()) == [
        "DELIVERED_acme_20261120_MAPPED.xlsx",
        "DELIVERED_sensodyne_20261120_MAPPED.xlsx",
    ]
    assert (mediaplan / "output" / "PLANNED_acme_20261120_MAPPED.xlsx").exists()


def test_a_file_past_twice_its_usual_time_is_critical(
    workspace: Workspace, mediaplan: Path
) -> None:
    ratios = {m.label: m.value for m in processing_ratio(load_profile("mediaplan"))}
    assert ratios["DELIVERED_sensodyne_20261120.xlsx"] > 2
    assert all(v < 1.5 for k, v in ratios.items() if k != "DELIVERED_sensodyne_20261120.xlsx")


BASE_LOG = r"processed (?P<file>.+?) \((?P<megabytes>[\d.]+) MB\) in (?P<seconds>[\d.]+) s"


@pytest.mark.parametrize(
    ("regex", "dated"),
    [
        (BASE_LOG, True),
        (BASE_LOG, False),  # a log without stamps: every run still counts
        ("^.*" + BASE_LOG, True),  # anchored at the line's start, as re.search reads it
        (
            r"(?i)PROCESSED (?P<file>\w+\.xlsx) \((?P<megabytes>[\d.]+) MB\) in (?P<seconds>[\d.]+) s",
            True,
        ),
    ],
)
def test_a_processing_log_regex_reads_each_line_as_written(
    tmp_path: Path, regex: str, dated: bool
) -> None:
    """The times in the log, as a person's regex reads them: a file named in any
    script, a line with or without a stamp, anchors and inline flags as on one line."""
    now = utc_now()
    lines = [
        (f"{(now - timedelta(minutes=60 - n)):%Y-%m-%dT%H:%M:%SZ} INFO " if dated else "")
        + f"processed données.xlsx (1.00 MB) in {seconds} s\n"
        for n, seconds in enumerate([10, 11, 9, 10, 30])
    ]
    (tmp_path / "p.log").write_text("".join(lines), encoding="utf-8")
    data = yaml.safe_load((PROJECT / "parameters" / "profiles" / "mediaplan.yaml").read_text())
    data["targets"]["logs"]["paths"] = [str(tmp_path / "*.log")]
    data["workbooks"]["processing_log"] = regex
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(data))
    (ratio,) = processing_ratio(load_profile(str(tmp_path / "p.yaml")))
    assert (ratio.label, ratio.value) == ("données.xlsx", 3.0)


def test_the_diagnostic_package_carries_no_secret_and_unpacks_to_its_manifest(
    workspace: Workspace, mediaplan: Path
) -> None:
    workspace.env["ANTHROPIC_API_KEY"] = CANARY
    with (mediaplan / "logs" / "excel_processor.log").open("a") as log:
        log.write(
            f"2026-11-23 06:00:00,000 - excel_processor - ERROR - auth failed for key {CANARY}\n"
        )
    workspace.opslib("run", "post-processing-verification", "--profile", "mediaplan")
    run = workspace.opslib(
        "run", "diagnostic-package", "--profile", "mediaplan", "-p", "operator=dana"
    )
    assert "applied plan" in run.stdout, run.stdout + run.stderr
    (package,) = (workspace.reports / "diagnostics").glob("mediaplan-*.tar.gz")
    assert CANARY.encode() not in package.read_bytes()
    with tarfile.open(package) as archive:
        members = {member.name.partition("/")[2]: archive.extractfile(member).read()
                   for member in archive.getmembers()}  # fmt: skip
    for name, data in members.items():
        assert CANARY.encode() not in data, name
    manifest = json.loads(members.pop("MANIFEST.json"))
    assert {entry["member"] for entry in manifest["members"]} == set(members)
    for entry in manifest["members"]:
        assert hashlib.sha256(members[entry["member"]]).hexdigest() == entry["sha256"]
    assert (
        "logs/excel_processor.log" in members
        and b"auth failed for key ***" in members["logs/excel_processor.log"]
    )
    incident = members["INCIDENT.md"].decode()
    assert "Operator: dana" in incident and "Escalation: Level 1" in incident
    assert "post-processing-verification is CRITICAL" in incident
    assert all(name in incident for name in FAILED)
    assert b"${ANTHROPIC_API_KEY:-}" in members["PROFILE.yaml"]


def test_the_package_stops_at_its_size_cap(workspace: Workspace, mediaplan: Path) -> None:
    plan = DiagnosticPackage(load_profile("mediaplan"), NoHistory(), max_bytes=1_000).plan()
    included = plan.context[plan.context["included"]]
    assert 0 < len(included) < len(plan.context)
    assert included["bytes"].sum() <= 1_000
    assert "left out at the 1 KB cap" in plan.summary
    # an approval covers the recipe, not the files of the moment
    assert plan.changes == ({"profile": "mediaplan", "days": 1.0, "max_bytes": 1_000},)


@pytest.mark.parametrize(("minutes", "level"), [(5, "Level 1"), (45, "Level 2"), (61, "Level 3")])
def test_escalation_follows_the_manuals_levels(minutes: float, level: str) -> None:
    assert escalation_level(minutes).startswith(level)


def test_a_workbook_damaged_inside_is_named_not_a_crash(
    workspace: Workspace, mediaplan: Path
) -> None:
    source = mediaplan / "input" / "PLANNED_sensodyne_20261120.xlsx"
    with zipfile.ZipFile(source) as original:
        parts = {name: original.read(name) for name in original.namelist()}
    sheet = next(name for name in parts if name.startswith("xl/worksheets/"))
    parts[sheet] = parts[sheet][: len(parts[sheet]) // 2]  # the XML cut in half
    with zipfile.ZipFile(source, "w") as damaged:
        for name, data in parts.items():
            damaged.writestr(name, data)
    table = inputs(load_profile("mediaplan")).table
    assert table.loc["PLANNED_sensodyne_20261120.xlsx", "problem"].startswith("unreadable: ")
    assert table.loc["PLANNED_acme_20261120.xlsx", "problem"] == ""


def test_a_literal_secret_in_a_profile_is_masked() -> None:
    text = "db:\n  password: hunter2xyz  # do not\n  api_key: ${KEY}\n  token: 'abc'\n"
    masked = mask_literal_secrets(text)
    assert "hunter2xyz" not in masked and "abc" not in masked
    assert "${KEY}" in masked and "# do not" in masked


def test_a_runbook_for_another_pipeline_tells_what_did_not_apply_without_a_traceback(
    workspace: Workspace, mediaplan: Path
) -> None:
    """weekly-review asks for the catalog's cycle summaries; once this was KeyError."""
    result = workspace.opslib("run", "weekly-review", "--profile", "mediaplan")
    assert result.returncode in (0, 1), result.stdout + result.stderr
    (page,) = [p for p in workspace.archive_files() if p.suffix == ".html"]
    html = page.read_text()
    assert "Traceback" not in html and "KeyError" not in html
    line = next(row for row in html.splitlines() if "Not applicable to profile mediaplan" in row)
    assert "summary_field, summary_rate (no file set 'cycle_summaries'" in line
