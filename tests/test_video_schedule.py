"""The video pipeline's scheduled and recovery runbooks against real PostgreSQL and Redis."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from support import Workspace

from opslib.probes import NotApplicable, ProbeError
from opslib.probes.pg_maintenance import queue_index_use, top_statements
from opslib.profiles import load_profile

EXAMPLES = Path(__file__).parent.parent / "parameters" / "examples"


def test_hourly_monitor_flags_the_expensive_video_and_slow_jobs(
    workspace: Workspace, video: dict[str, int]
) -> None:
    result = workspace.opslib(
        "run", "hourly-monitor", "--profile", "video", "-p", "window_hours=48"
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert (
        f"CRITICAL max_item_cost: most expensive item finished in the last 48 h: {video['expensive']} at $3.45"
        in result.stdout
    )
    assert (
        "processing_time" in result.stdout
    )  # the demo's jobs run 2-12 min against an 8/10 min limit


def test_evening_wrap_applied_takes_the_backup_and_vacuums(
    workspace: Workspace, video: dict[str, int]
) -> None:
    workspace.env["VIDEO_BACKUP_DIR"] = str(workspace.root / "backups")
    result = workspace.opslib(
        "run", "evening-wrap", "--profile", "video", "-p", "apply=true", "--by", "cron"
    )
    assert "action:take_backup: applied plan" in result.stdout, result.stdout + result.stderr
    assert "action:vacuum_analyze: applied plan" in result.stdout
    assert len(list((workspace.root / "backups").glob("video-*.dump"))) == 1
    # the manual's evening BGSAVE: the Redis snapshot beside the dump, with its checksum
    assert len(list((workspace.root / "backups").glob("video-redis-*.rdb"))) == 1
    with sqlite3.connect(workspace.reports / "ledger.sqlite") as ledger:
        audited = {
            row[0]
            for row in ledger.execute(
                "SELECT action FROM audit WHERE outcome = 'applied' AND run_by = 'cron'"
            )
        }
    assert audited == {"take_backup", "take_redis_backup", "vacuum_analyze"}


def test_post_recovery_validation_reports_rpo_and_rto_after_a_rehearsed_restore(
    workspace: Workspace, video: dict[str, int]
) -> None:
    workspace.env["VIDEO_BACKUP_DIR"] = str(workspace.root / "backups")
    before = workspace.opslib("run", "post-recovery-validation", "--profile", "video")
    assert "UNKNOWN  restore_time: no verified restore recorded yet" in before.stdout, (
        before.stdout + before.stderr
    )
    workspace.opslib("run", "backup", "--profile", "video", "-p", "apply=true")
    workspace.opslib("run", "restore", "--profile", "video", "-p", "apply=true")
    after = workspace.opslib("run", "post-recovery-validation", "--profile", "video")
    assert "restore_time:" not in after.stdout, "no longer UNKNOWN once a restore is on record"
    pages = sorted(workspace.reports.rglob("post-recovery-validation--*.html"))
    assert "last verified restore" in pages[-1].read_text()
    assert (
        "CRITICAL invariant[negative_costs]" in after.stdout
    )  # the planted bad rows survive a restore


def test_queue_table_without_a_status_index_is_a_missing_index_finding(pipeline: str) -> None:
    finding = queue_index_use(load_profile(pipeline))
    assert finding.value == 1
    assert "CREATE INDEX ON jobs (status, started_at)" in finding.summary


def test_queue_table_with_the_recommended_index_has_no_finding(
    video: dict[str, int], workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VIDEO_DSN", workspace.env["VIDEO_DSN"])
    assert queue_index_use(load_profile("video")).value == 0


@pytest.mark.parametrize("example", ["procrastinate", "laravel"])
def test_a_queue_with_no_table_or_no_status_column_has_no_status_index_to_look_for(
    example: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """procrastinate's queue is a query over several tables; Laravel's has no status
    column. Once UNKNOWN on every run, the step does not apply to them."""
    monkeypatch.setenv(f"{example.upper()}_DSN", "postgresql://never@127.0.0.1:1/reached")
    with pytest.raises(NotApplicable):
        queue_index_use(load_profile(str(EXAMPLES / f"{example}.yaml")))


def test_top_statements_without_pg_stat_statements_says_how_to_load_it(pipeline: str) -> None:
    with pytest.raises(ProbeError, match="shared_preload_libraries"):
        top_statements(load_profile(pipeline))
