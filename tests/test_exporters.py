"""A run's outcome as Nagios, JSON and Prometheus read it: each output is parsed back the way
the monitoring system would, never compared as a fixed string."""

from __future__ import annotations

import json
import math
import os
import re
import stat
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from support import Workspace

from opslib.archive.exporters import RunSummary, json_document, nagios_line, write_prometheus
from opslib.checks import CheckResult
from opslib.runner.outcome import RunOutcome
from opslib.status import Status

FINISHED_AT = datetime(2026, 11, 23, 9, 15, 2)  # naive UTC, as the runner keeps it
FINISHED_AT_UNIX = 1795425302.0

# The plugin line: `OPSLIB <STATUS> - <runbook> on <profile>: <headline>[ | <perfdata>]`.
PLUGIN_LINE = re.compile(
    r"OPSLIB (?P<status>OK|WARNING|CRITICAL|UNKNOWN) - (?P<runbook>\S+) on (?P<profile>\S+): "
    r"(?P<headline>[^|\n]*?)(?: \| (?P<perfdata>[^|\n]+))?"
)
# One perfdata entry per the plugin guidelines: a label (quoted, `''` for a quote, or bare),
# a value in [-0-9.], an optional UOM, then warn, crit, min and max, trailing ones omitted.
PERFDATA_ENTRY = re.compile(
    r"(?:'(?P<quoted>(?:[^']|'')+)'|(?P<bare>[^'= ]+))"
    r"=(?P<value>-?[0-9.]+)(?P<uom>s|us|ms|%|B|KB|MB|TB|c)?"
    r"(?:;(?P<warn>[^; ]*))?(?:;(?P<crit>[^; ]*))?(?:;(?P<min>[-0-9.]*))?(?:;(?P<max>[-0-9.]*))?"
)


def parse_plugin_line(line: str) -> tuple[dict[str, str], dict[str, dict[str, str]]]:
    """The line's text fields and its perfdata by label, or an assertion error if either
    part breaks the format."""
    assert "\n" not in line
    match = PLUGIN_LINE.fullmatch(line)
    assert match, f"not a plugin line: {line!r}"
    perfdata: dict[str, dict[str, str]] = {}
    text = match["perfdata"] or ""
    # Quoted labels may hold spaces, so entries are matched one after another, not split.
    position = 0
    while position < len(text):
        entry = PERFDATA_ENTRY.match(text, position)
        assert entry, f"bad perfdata at {text[position:]!r}"
        label = entry["bare"] or entry["quoted"].replace("''", "'")
        perfdata[label] = {
            key: entry[key] or "" for key in ("value", "uom", "warn", "crit", "min", "max")
        }
        position = entry.end()
        if position < len(text):
            assert text[position] == " ", f"entries must be separated by a space: {text!r}"
            position += 1
    return match.groupdict(), perfdata


def morning_results() -> list[CheckResult]:
    return [
        CheckResult("disk_used_pct", Status.OK, 71.5, "%", "80", "95.0", "71.5% used"),
        CheckResult("stuck jobs", Status.WARNING, 3, "jobs", "0", None, "3 job(s) stuck"),
        CheckResult("oldest job's age", Status.WARNING, 20400, "s", "30 min", "6 h", "340 min"),
        CheckResult("database", Status.OK, summary="reachable"),
        CheckResult("log_error_rate", Status.UNKNOWN, math.nan, "%", summary="no log lines"),
    ]


def plugin_line(
    results: list[CheckResult], headline: str = "3 of 5 check(s) need attention"
) -> str:
    return nagios_line(
        RunSummary("morning-check", "demo", Status.WARNING, headline, results, 12.5, FINISHED_AT)
    )


def test_nagios_line_parses_back_into_status_text_and_perfdata() -> None:
    fields, perfdata = parse_plugin_line(plugin_line(morning_results()))

    assert fields["status"] == "WARNING"
    assert (fields["runbook"], fields["profile"]) == ("morning-check", "demo")
    assert fields["headline"] == "3 of 5 check(s) need attention"
    assert perfdata["disk_used_pct"] == {
        "value": "71.5",
        "uom": "%",
        "warn": "80",
        "crit": "95.0",
        "min": "",
        "max": "",
    }
    assert perfdata["stuck jobs"]["value"] == "3"
    assert perfdata["stuck jobs"]["crit"] == ""


def test_labels_with_spaces_and_quotes_are_quoted_with_the_quote_doubled() -> None:
    line = plugin_line(morning_results())

    assert "'oldest job''s age'=20400s;" in line
    assert "'stuck jobs'=3;0" in line
    assert " disk_used_pct=71.5%;80;95.0" in line
    assert "oldest job's age" in parse_plugin_line(line)[1]


def test_human_unit_thresholds_become_base_units_in_perfdata() -> None:
    perfdata = parse_plugin_line(plugin_line(morning_results()))[1]

    assert (perfdata["oldest job's age"]["warn"], perfdata["oldest job's age"]["crit"]) == (
        "1800",
        "21600",
    )


@pytest.mark.parametrize(
    ("unit", "uom"),
    [
        ("s", "s"),
        ("ms", "ms"),
        ("%", "%"),
        ("B", "B"),
        ("bytes", "B"),
        ("MB", "MB"),
        ("min", ""),
        ("jobs", ""),
        ("USD", ""),
        ("°C", ""),
    ],
)
def test_only_units_the_guidelines_allow_reach_perfdata(unit: str, uom: str) -> None:
    line = plugin_line([CheckResult("measured", Status.OK, 42, unit)])

    assert parse_plugin_line(line)[1]["measured"]["uom"] == uom
    assert line.endswith(f"measured=42{uom}")


def test_values_are_written_without_exponents() -> None:
    results = [
        CheckResult("tiny", Status.OK, 1e-7, "s"),
        CheckResult("huge", Status.OK, 2e20, "B"),
    ]

    perfdata = parse_plugin_line(plugin_line(results))[1]

    assert perfdata["tiny"]["value"] == "0.0000001"
    assert perfdata["huge"]["value"] == "200000000000000000000"


def test_results_without_a_finite_value_are_left_out_of_perfdata() -> None:
    perfdata = parse_plugin_line(plugin_line(morning_results()))[1]

    assert set(perfdata) == {"disk_used_pct", "stuck jobs", "oldest job's age"}


def test_no_numeric_result_means_no_perfdata_separator() -> None:
    line = plugin_line([CheckResult("database", Status.OK, summary="reachable")])

    assert "|" not in line
    assert parse_plugin_line(line)[1] == {}


def test_pipes_and_newlines_in_the_text_never_leak_into_perfdata() -> None:
    line = plugin_line(
        [CheckResult("a|b", Status.OK, 1), CheckResult("c=d\ne", Status.OK, 2)],
        headline="rate | errors\nsecond line",
    )

    fields, perfdata = parse_plugin_line(line)
    assert line.count("|") == 1
    assert fields["headline"] == "rate / errors second line"
    assert set(perfdata) == {"a/b", "c_d e"}


def document(results: list[CheckResult], duration_s: float = 12.5) -> dict[str, Any]:
    text = json_document(
        RunSummary(
            runbook="morning-check",
            profile="demo",
            status=Status.WARNING,
            headline="3 of 5 check(s) need attention",
            results=results,
            duration_s=duration_s,
            finished_at=FINISHED_AT,
            report="reports/2026/11/23/morning-check--demo--091502.html",
        )
    )
    return json.loads(text, parse_constant=_refuse_non_json)


def _refuse_non_json(constant: str) -> None:
    raise AssertionError(f"{constant} is not JSON")


def test_json_document_holds_the_run_with_keys_in_a_fixed_order() -> None:
    loaded = document(morning_results())

    assert list(loaded) == [
        "runbook",
        "profile",
        "status",
        "exit_code",
        "headline",
        "duration_s",
        "finished_at",
        "report",
        "results",
    ]
    assert (loaded["status"], loaded["exit_code"]) == ("WARNING", 1)
    assert loaded["finished_at"] == "2026-11-23T09:15:02Z"
    assert loaded["duration_s"] == 12.5
    assert loaded["report"] == "reports/2026/11/23/morning-check--demo--091502.html"


def test_json_results_round_trip_into_check_results() -> None:
    results = morning_results()[:4]

    records = document(results)["results"]

    assert [list(record) for record in records] == [
        ["name", "status", "value", "unit", "warning", "critical", "summary"]
    ] * len(results)
    assert [CheckResult.from_record(record) for record in records] == results


def test_nan_and_infinity_become_null_and_the_document_stays_json() -> None:
    results = [
        CheckResult("log_error_rate", Status.UNKNOWN, math.nan, "%"),
        CheckResult("backlog", Status.CRITICAL, math.inf, "jobs"),
    ]

    loaded = document(results, duration_s=math.nan)

    assert [record["value"] for record in loaded["results"]] == [None, None]
    assert loaded["duration_s"] is None


def write(directory: Path, runbook: str = "morning-check", **changes: Any) -> Path:
    arguments = {
        "runbook": runbook,
        "profile": "demo",
        "status": Status.WARNING,
        "results": morning_results(),
        "duration_s": 12.5,
        "finished_at": FINISHED_AT,
        "headline": "",
    }
    return write_prometheus(directory, RunSummary(**{**arguments, **changes}))


def samples(path: Path) -> dict[tuple[str, frozenset], float]:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(path.read_text(encoding="utf-8"))
        for sample in family.samples
    }


@pytest.fixture
def new_york_local_time(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A local time zone far from UTC: a naive time read as local would be off by hours."""
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.usefixtures("new_york_local_time")
def test_prometheus_file_holds_check_and_run_metrics(tmp_path: Path) -> None:
    directory = tmp_path / "textfile" / "collector"

    previous = os.umask(0o077)  # the CLI's: node_exporter must still read the file
    try:
        path = write(directory)
    finally:
        os.umask(previous)
    found = samples(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644

    assert path == directory / "opslib--morning-check--demo.prom"
    run = {("runbook", "morning-check"), ("profile", "demo")}
    assert found[("opslib_check_status", frozenset(run | {("check", "stuck jobs")}))] == 1
    assert found[("opslib_check_status", frozenset(run | {("check", "database")}))] == 0
    assert found[("opslib_check_status", frozenset(run | {("check", "log_error_rate")}))] == 3
    disk = frozenset(run | {("check", "disk_used_pct"), ("unit", "%")})
    assert found[("opslib_check_value", disk)] == 71.5
    values = {labels for name, labels in found if name == "opslib_check_value"}
    assert {dict(labels)["check"] for labels in values} == {
        "disk_used_pct",
        "stuck jobs",
        "oldest job's age",
    }
    assert found[("opslib_run_status", frozenset(run))] == 1
    assert found[("opslib_run_duration_seconds", frozenset(run))] == 12.5
    assert found[("opslib_last_run_timestamp_seconds", frozenset(run))] == FINISHED_AT_UNIX


def test_every_prometheus_metric_says_what_it_is(tmp_path: Path) -> None:
    families = text_string_to_metric_families(write(tmp_path).read_text(encoding="utf-8"))

    documented = {family.name: family.documentation for family in families}

    assert set(documented) == {
        "opslib_check_status",
        "opslib_check_value",
        "opslib_run_status",
        "opslib_run_duration_seconds",
        "opslib_last_run_timestamp_seconds",
    }
    assert all(len(text) > 20 for text in documented.values())


def test_another_runbook_keeps_its_own_prometheus_file(tmp_path: Path) -> None:
    first = write(tmp_path)
    before = first.read_bytes()

    second = write(tmp_path, runbook="health-check", status=Status.OK)

    assert second != first
    assert first.read_bytes() == before
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        "opslib--health-check--demo.prom",
        "opslib--morning-check--demo.prom",
    ]


def test_rewrite_renames_a_complete_file_over_the_one_a_reader_holds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path)
    old_inode = path.stat().st_ino
    renames: list[tuple[bytes, bytes]] = []
    real_rename = os.rename

    def watched_rename(source: str, target: str) -> None:
        # At the moment of the rename the new text is whole and the old file untouched.
        renames.append((Path(source).read_bytes(), Path(target).read_bytes()))
        real_rename(source, target)

    with path.open("rb") as reader:
        old_text = reader.read(10)
        monkeypatch.setattr(os, "rename", watched_rename)
        write(tmp_path, status=Status.CRITICAL, duration_s=99.0)
        old_text += reader.read()

    new_text = path.read_bytes()
    assert len(renames) == 1
    assert renames[0] == (new_text, old_text)
    assert b"opslib_run_duration_seconds" in old_text and old_text.endswith(b"\n")
    assert (
        samples(path)[
            (
                "opslib_run_duration_seconds",
                frozenset({("runbook", "morning-check"), ("profile", "demo")}),
            )
        ]
        == 99.0
    )
    assert path.stat().st_ino != old_inode
    assert [entry.name for entry in tmp_path.iterdir()] == [path.name]


def test_a_runs_outcome_reaches_the_exporters_field_for_field() -> None:
    results, headline = morning_results(), "3 of 5 check(s) need attention"
    notices = ["notified mail: [opslib] WARNING morning-check on demo: 1 change(s)"]
    outcome = RunOutcome(
        "morning-check",
        "demo",
        Status.WARNING,
        headline,
        results,
        None,
        12.5,
        FINISHED_AT,
        notices=notices,
    )
    assert outcome.summary("reports/morning-check.html") == RunSummary(
        "morning-check",
        "demo",
        Status.WARNING,
        headline,
        results,
        12.5,
        FINISHED_AT,
        "reports/morning-check.html",
        notices,
    )


def test_opslib_run_prints_one_nagios_line_and_writes_the_textfile(
    workspace: Workspace, tmp_path: Path
) -> None:
    metrics = tmp_path / "textfiles"
    result = workspace.opslib(
        "run", "morning-check", "--format", "nagios", "--prometheus", str(metrics)
    )
    assert result.returncode == 1, result.stderr
    (line,) = result.stdout.splitlines()
    assert line.startswith("OPSLIB WARNING - morning-check on demo: ") and " | " in line
    assert "stuck_jobs=3;0;5" in line
    (textfile,) = metrics.glob("*.prom")
    samples = {
        (sample.name, sample.labels.get("check")): sample.value
        for family in text_string_to_metric_families(textfile.read_text())
        for sample in family.samples
    }
    assert samples[("opslib_check_status", "stuck_jobs")] == 1
    assert samples[("opslib_run_status", None)] == 1
    document = json.loads(workspace.opslib("run", "morning-check", "--format", "json").stdout)
    assert document["status"] == "WARNING" and document["report"].endswith(".html")


def test_a_run_that_never_starts_is_still_one_unknown_line(workspace: Workspace) -> None:
    result = workspace.opslib("run", "no-such-runbook", "--format", "nagios")
    assert result.returncode == 3
    (line,) = result.stdout.splitlines()
    assert line.startswith("OPSLIB UNKNOWN - no-such-runbook on : not run: no runbook named")
    document = json.loads(workspace.opslib("run", "nope", "--format", "json").stdout)
    assert document["status"] == "UNKNOWN" and document["exit_code"] == 3


def test_an_unwritable_textfile_folder_keeps_the_runs_exit_code(
    workspace: Workspace, tmp_path: Path
) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    result = workspace.opslib("run", "morning-check", "--prometheus", str(blocked / "metrics"))
    assert result.returncode == 1  # the demo's WARNING, not an error of the exporter
    assert "prometheus textfile not written" in result.stderr and "Traceback" not in result.stderr
