"""The video manual's complete-failure procedure on a real PostgreSQL, a real Redis and
real worker processes: one plan shown whole, applied in order, and the first step that
fails stops the rest with what ran before it named."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from service_fixtures import end, pids_of
from test_queue_reset import VideoQueue, run, video_queue  # noqa: F401 - the fixture
from test_services import worker_service

from opslib.actions.pipeline import RecoverPipeline
from opslib.actions.services import StartServices
from opslib.probes.services import services_running
from opslib.profiles import Profile, load_profile
from opslib.status import Status


def running(pid: int) -> bool:
    """Alive, not a zombie waiting for this test process (their parent) to reap it."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.fixture
def pipeline_with_workers(video_queue: VideoQueue, tmp_path: Path) -> Iterator[Profile]:  # noqa: F811
    """The video-like queue with two stand-in workers and a backup folder, workers running."""
    path = Path(video_queue.profile_path)
    services = worker_service("api", tmp_path) + worker_service("workers", tmp_path)
    path.write_text(
        path.read_text() + f"backups:\n  dir: {tmp_path / 'backups'}\nservices:\n{services}"
    )
    profile = load_profile(str(path))
    started = run(StartServices(profile), apply=True)
    assert started.mode == "applied", started.message
    yield profile
    end(pids_of(tmp_path, "api") + pids_of(tmp_path, "workers"))


def test_the_recovery_is_one_plan_and_a_dry_run_changes_nothing(
    pipeline_with_workers: Profile,
    video_queue: VideoQueue,  # noqa: F811
    tmp_path: Path,
) -> None:
    fresh = video_queue.stuck[0]  # a job that moved a moment ago: not stuck, still reset
    with video_queue.engine.begin() as connection:
        connection.exec_driver_sql(
            f"UPDATE jobs SET started_at = now(), updated_at = now() WHERE id = {fresh}"
        )
    rows, redis, pids = video_queue.rows(), video_queue.redis_state(), pids_of(tmp_path, "api")
    outcome = run(RecoverPipeline(pipeline_with_workers))
    assert outcome.mode == "dry-run", outcome.message
    assert [part.action for part in outcome.plan.parts] == [
        "stop_pipeline",
        "take_backup",
        "take_redis_backup",
        "reset_processing_jobs",
        "start_pipeline",
    ]
    assert outcome.plan.summary.startswith("stop 2 service(s) in reverse start order")
    # every job left processing, not only those past the stuck threshold
    processing = video_queue.status_of("processing")
    reset = outcome.plan.parts[3]
    assert sorted(change["id"] for change in reset.changes) == processing
    assert fresh in processing
    assert video_queue.rows() == rows and video_queue.redis_state() == redis
    assert pids_of(tmp_path, "api") == pids and not (tmp_path / "backups").exists()


def test_applied_it_stops_backs_up_resets_both_stores_and_starts_healthy(
    pipeline_with_workers: Profile,
    video_queue: VideoQueue,  # noqa: F811
    tmp_path: Path,
) -> None:
    processing = video_queue.status_of("processing")
    old_pids = pids_of(tmp_path, "api") + pids_of(tmp_path, "workers")
    outcome = run(RecoverPipeline(pipeline_with_workers), apply=True)
    assert outcome.mode == "applied" and outcome.result.status is Status.OK, outcome.message
    assert video_queue.status_of("processing") == []
    assert set(processing) <= set(video_queue.status_of("queued"))
    in_flight, pending = video_queue.redis_state()
    assert not in_flight & {str(job) for job in processing}
    assert {str(job) for job in processing} <= set(pending)
    kinds = {path.suffix for path in (tmp_path / "backups").iterdir()}
    assert {".dump", ".rdb", ".sha256"} <= kinds  # the database dump, the snapshot, its sum
    assert not any(running(pid) for pid in old_pids)
    assert [metric.value for metric in services_running(pipeline_with_workers)] == [1, 1]
    events = (tmp_path / "events.log").read_text().split()
    # stopped last-started first, started in order
    stops = [word for word in events if word in ("api", "workers")]
    assert stops[-4:] == ["workers", "api", "api", "workers"]


def test_a_step_that_fails_stops_the_procedure_and_names_what_ran(
    pipeline_with_workers: Profile,
    video_queue: VideoQueue,  # noqa: F811
    tmp_path: Path,
) -> None:
    folder = tmp_path / "backups"
    folder.mkdir()
    # immutable: the dump cannot be written there, not even by root
    if subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode:
        pytest.skip("chattr +i is not available on this file system")
    rows = video_queue.rows()
    try:
        outcome = run(RecoverPipeline(pipeline_with_workers), apply=True)
    finally:
        subprocess.run(["chattr", "-i", str(folder)], check=True)
    assert outcome.mode == "failed" and outcome.result.status is Status.CRITICAL, outcome.message
    assert "take_backup failed" in outcome.message
    assert "after stop_pipeline (2 changed)" in outcome.message
    assert video_queue.rows() == rows  # the reset never ran
