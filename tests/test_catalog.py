"""The catalog pipeline's demo and its log runbooks, run as cron would run them."""

from __future__ import annotations

import gzip
import hashlib
import html
import os
import stat
import time
from pathlib import Path

import pytest
from support import Workspace


@pytest.fixture
def catalog(workspace: Workspace) -> Workspace:
    created = workspace.opslib("demo", "catalog")
    assert created.returncode == 0, created.stdout + created.stderr
    return workspace


def test_high_error_rate_on_the_demo_is_critical_and_lists_the_top_patterns(
    catalog: Workspace,
) -> None:
    result = catalog.opslib("run", "high-error-rate", "--profile", "catalog")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "CRITICAL log_error_rate" in " ".join(result.stdout.split())
    (report,) = catalog.reports.rglob("*high-error-rate*.html")
    text = html.unescape(report.read_text())
    for pattern in (
        "fetch fragrance <n> failed: timeout after <n> s",
        "fetch fragrance <n> failed: HTTP <n> rate limit exceeded, retry in <n> s",
        'import of fragrance <n> failed: duplicate key value violates unique constraint "fragrances_slug_key"',
    ):
        assert pattern in text
    assert "Errors per hour" in text


def test_morning_check_on_a_profile_without_a_database_skips_what_it_lacks(
    catalog: Workspace,
) -> None:
    result = catalog.opslib("run", "morning-check", "--profile", "catalog")
    assert result.returncode == 1, result.stdout + result.stderr  # 3.9 % over 24 h: WARNING
    (report,) = catalog.reports.rglob("*morning-check*.html")
    text = report.read_text()
    not_applicable = next(line for line in text.splitlines() if "Not applicable to profile" in line)
    assert "database_reachable" in not_applicable and "gpu_memory" in not_applicable
    assert ": not applicable (" not in text and "<b>gpu_memory</b>" not in text
    assert "log_error_patterns" in text


def _tree(root: Path) -> dict[str, str]:
    """Every file under `root` with its SHA-256 and modification time."""
    return {
        str(
            path.relative_to(root)
        ): f"{hashlib.sha256(path.read_bytes()).hexdigest()} {path.stat().st_mtime_ns}"
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def test_a_malformed_cycle_summary_is_named_and_the_other_weeks_are_reviewed(
    catalog: Workspace,
) -> None:
    summaries = sorted((catalog.data / "catalog" / "summaries").glob("cycle-*.json"))
    summaries[5].write_text('{"cycle": "2026-W41", "failed": 3,')  # cut off mid-write
    result = catalog.opslib("run", "weekly-review", "--profile", "catalog")
    assert result.returncode == 2, result.stdout + result.stderr  # an unusable record
    (report,) = catalog.reports.rglob("*weekly-review*.html")
    text = html.unescape(report.read_text())
    assert f"{summaries[5].name}: not valid JSON" in text
    assert "1 of 12 file(s) unusable" in text
    assert "summary_field[system_health_score]" in text  # the newest week is still judged
    assert "median before" in text


def test_monthly_maintenance_without_apply_changes_no_file(catalog: Workspace) -> None:
    root = catalog.data / "catalog"
    before = _tree(root)
    result = catalog.opslib("run", "monthly-maintenance", "--profile", "catalog")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "would gzip 2 log file(s)" in result.stdout or "dry run" in html.unescape(
        next(catalog.reports.rglob("*monthly-maintenance*.html")).read_text()
    )
    assert _tree(root) == before


def test_monthly_maintenance_with_apply_archives_exactly_the_old_files(
    catalog: Workspace,
) -> None:
    logs = catalog.data / "catalog" / "logs"
    now = time.time()
    fresh = logs / "pipeline_errors_recent.log"
    fresh.write_text("2026-11-01T00:00:00Z INFO still in use\n")
    os.utime(fresh, (now - 29 * 86400, now - 29 * 86400))  # a day short of the limit
    old = {
        path.name: path.read_bytes()
        for path in logs.glob("*.log")
        if now - path.stat().st_mtime > 30 * 86400
    }
    expired = [path.name for path in logs.glob("*.gz") if now - path.stat().st_mtime > 90 * 86400]
    assert len(old) == 2 and len(expired) == 1
    for name in old:  # the pipeline's group reads its logs, and goes on reading the archives
        (logs / name).chmod(0o640)
    untouched = _tree(logs)
    for name in [*old, *expired]:
        untouched.pop(name)
    result = catalog.opslib(
        "run", "monthly-maintenance", "--profile", "catalog", "-p", "apply=true"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for name, content in old.items():
        assert not (logs / name).exists()
        with gzip.open(logs / f"{name}.gz", "rb") as archive:
            assert archive.read() == content
        assert stat.S_IMODE((logs / f"{name}.gz").stat().st_mode) == 0o640
    assert not any((logs / name).exists() for name in expired)
    after = _tree(logs)
    assert {name: after[name] for name in untouched} == untouched
    backups = list(
        (catalog.data / "catalog" / "config" / "backup").glob("monitoring_config_*.json")
    )
    assert len(backups) == 1


def test_slow_processing_applies_the_twice_expected_rule_to_the_last_cycle(
    catalog: Workspace,
) -> None:
    result = catalog.opslib("run", "slow-processing", "--profile", "catalog")
    assert result.returncode == 1, result.stdout + result.stderr
    line = next(
        row
        for row in result.stdout.splitlines()
        if row.strip().startswith("WARNING  duration_ratio[cycle]")
    )
    assert "WARNING" in line and "x the expected 15 minutes" in line


def test_monthly_maintenance_leaves_a_log_that_is_still_open_alone(catalog: Workspace) -> None:
    logs = catalog.data / "catalog" / "logs"
    old = sorted(
        path for path in logs.glob("*.log") if time.time() - path.stat().st_mtime > 30 * 86400
    )
    with old[0].open("a"):  # a writer that never let go of it
        result = catalog.opslib(
            "run", "monthly-maintenance", "--profile", "catalog", "-p", "apply=true"
        )
    assert result.returncode == 0, result.stdout + result.stderr
    assert old[0].exists() and not old[0].with_name(old[0].name + ".gz").exists()
    assert not old[1].exists()  # the other one was archived
