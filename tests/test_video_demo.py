"""The video pipeline seeded by `opslib demo video` into a real PostgreSQL and Redis:
each runbook finds what was planted for it."""

from __future__ import annotations

from postgres_server import PostgresServer
from support import Workspace


def test_data_integrity_finds_every_planted_broken_row(
    workspace: Workspace, video: dict[str, int]
) -> None:
    result = workspace.opslib("run", "data-integrity", "--profile", "video")
    assert result.returncode == 2, result.stdout + result.stderr
    for rule in (
        "negative_costs",
        "completed_without_output",
        "started_before_created",
        "costs_without_video",
    ):
        assert f"CRITICAL invariant[{rule}]: 1 row(s) break {rule}" in result.stdout
    assert "invariant[duplicate_output_paths]" not in result.stdout  # holds: not reported
    (page,) = [p for p in workspace.archive_files() if p.suffix == ".html"]
    html = page.read_text()
    assert f"<td>{video['negative_cost']}</td>" in html and "999999" in html


def test_queue_not_processing_finds_the_planted_orphan_and_lost_video(
    workspace: Workspace, video: dict[str, int]
) -> None:
    result = workspace.opslib("run", "queue-not-processing", "--profile", "video")
    assert (
        "processing_drift: 1 orphan(s) in Redis, 1 row(s) processing but absent from Redis"
        in result.stdout
    ), result.stdout
    (page,) = [p for p in workspace.archive_files() if p.suffix == ".html"]
    html = page.read_text()
    assert f"<td>{video['orphan']}</td>" in html and f"<td>{video['lost']}</td>" in html


def test_demo_refuses_a_database_it_did_not_create(
    workspace: Workspace, server: PostgresServer, video: dict[str, int]
) -> None:
    engine = server.engine("video")
    with engine.begin() as connection:
        connection.exec_driver_sql("DROP TABLE opslib_demo")
    engine.dispose()
    result = workspace.opslib("demo", "video")
    assert result.returncode == 3
    assert "opslib did not create" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_high_cost_is_critical_lists_the_video_and_plans_the_halt(
    workspace: Workspace, video: dict[str, int]
) -> None:
    result = workspace.opslib("run", "high-cost", "--profile", "video")
    assert result.returncode == 2, result.stdout + result.stderr
    assert (
        f"CRITICAL max_item_cost: most expensive item finished in the last 24 h: {video['expensive']} at $3.45"
        in result.stdout
    )
    assert "dry run: would halt the pipeline: set halt from off to on" in result.stdout


def test_emergency_halt_sets_the_flag_when_applied_and_resume_clears_it(
    workspace: Workspace, video: dict[str, int]
) -> None:
    workspace.opslib(
        "run",
        "emergency-halt",
        "--profile",
        "video",
        "-p",
        "apply=true",
        "-p",
        "reason=cost runaway",
    )
    check = workspace.opslib("run", "emergency-halt", "--profile", "video")
    assert "WARNING  halted: the pipeline is HALTED" in check.stdout, check.stdout + check.stderr
    assert "nothing to do: the flag is already on" in check.stdout
    workspace.opslib(
        "run", "emergency-halt", "--profile", "video", "-p", "halt=false", "-p", "apply=true"
    )
    resumed = workspace.opslib("run", "emergency-halt", "--profile", "video", "-p", "halt=false")
    assert (
        "OK       halted" not in resumed.stdout
        and "halted: the pipeline is HALTED" not in resumed.stdout
    )
    assert resumed.returncode == 0, resumed.stdout
