"""The video manual carried by its profile (docs/manuals/video.md): the GPU, the API health,
the disk and the log the manual is built around, backups at its recovery point, its
corruption queries, its escalation levels and its index of symptoms and quick commands,
on the demo seeded once into real PostgreSQL and Redis."""

from __future__ import annotations

import json
import re
import sys
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import fake_pynvml
import nbformat
import psycopg
import pytest
from fake_pynvml import GIB, FakeDevice
from manual_maps import MANUALS, manual_problems, problems
from postgres_server import PostgresServer
from redis_server import RedisServer
from support import Workspace, answering

from opslib.alerting.severity import classify
from opslib.checks import CheckResult, judge
from opslib.checks.catalogue import catalogue
from opslib.clock import utc_now
from opslib.demo import video as video_demo
from opslib.notebooks import applies, find_runbook, steps
from opslib.probes import backups
from opslib.probes.postgres import blocking_chains
from opslib.profiles import Profile, load_profile
from opslib.runbook import Runbook
from opslib.schedule.entries import load_schedule
from opslib.status import Status


@pytest.fixture(scope="module")
def seeded(
    server: PostgresServer, redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, str]]:
    """`opslib demo video` once for the module (its database, Redis keys and log); returns
    the variables the profile reads, also set in this process."""
    server.fresh_database("video")
    redis_server.client().flushdb()
    folder = tmp_path_factory.mktemp("video-manual")
    env = {
        "VIDEO_DSN": server.url("video"),
        "VIDEO_REDIS_URL": redis_server.url,
        "VIDEO_LOG_DIR": str(folder / "logs"),
        "VIDEO_BACKUP_DIR": str(folder / "backups"),
        "VIDEO_DATA_DIR": str(folder),
    }
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        for name in ("VIDEO_GPU", "VIDEO_API_URL", "VIDEO_WEBHOOK_URL"):
            patch.delenv(name, raising=False)
        video_demo.seed(load_profile("video"))
        yield env


@pytest.fixture
def video_profile(seeded: dict[str, str]) -> Profile:
    return load_profile("video")


@pytest.fixture
def health_api() -> Iterator[str]:
    """The Pipeline API's `/health/detailed`, answering as a healthy API does."""

    def answer(request: BaseHTTPRequestHandler) -> tuple[int, bytes]:
        found = request.path == "/health/detailed"
        return 200 if found else 404, json.dumps({"status": "healthy", "database": "ok"}).encode()

    with answering(answer) as base:
        yield f"{base}/health/detailed"


def test_morning_check_on_the_video_demo_reads_every_part_of_the_manual(
    seeded: dict[str, str], workspace: Workspace, health_api: str
) -> None:
    """The manual's morning script: API health, queue by status, disk, stuck jobs, and the
    log; once the GPU, API, disk and log were all skipped on video."""
    workspace.env.update(seeded, VIDEO_API_URL=health_api)
    result = workspace.opslib("run", "morning-check", "--profile", "video")
    assert result.returncode in (1, 2), result.stdout + result.stderr
    assert "stuck_jobs: 3 job(s) processing for more than 10 min" in result.stdout
    (page,) = [p for p in workspace.archive_files() if p.suffix == ".html"]
    html = page.read_text()
    for step in (
        "http_endpoint[api]",
        "disk_free[data]",
        "disk_free[backups]",
        "log_error_rate",
        "queue_depth",
        "redis_queue_size",
        "failure_rate",
        "throughput",
    ):
        assert step in html, step
    assert "skipped" not in html.lower()
    absent = re.search(r"Not applicable to profile video: ([^<]*)", html).group(1)
    assert not re.search(r"http_endpoint|disk_free|log_|queue_depth|stuck_jobs", absent)
    assert "gpu_memory" in absent  # no VIDEO_GPU here: this machine has no GPU


def test_the_pipeline_log_is_read_at_the_manuals_error_rates(video_profile: Profile) -> None:
    """The demo's log (started, finished and failed jobs, a burst of rate limiting in the
    last hours) is read: high-error-rate no longer fails for want of a log."""
    assert applies(find_runbook("high-error-rate"), video_profile)
    (result,) = Runbook("t", video_profile).evaluate("log_error_rate").results
    assert result.status in (Status.WARNING, Status.CRITICAL), result.summary
    assert re.search(r"\d+ error\(s\) in \d+ log line\(s\)", result.summary)


def test_the_gpu_is_off_until_video_gpu_is_set_then_judged_at_the_manuals_limits(
    seeded: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert not load_profile("video").provides("gpu")
    assert not applies(find_runbook("gpu-memory"), load_profile("video"))
    monkeypatch.setenv("VIDEO_GPU", "1")
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml)  # the render host's two cards
    fake_pynvml.configure(
        [
            FakeDevice(memory_total=32 * GIB, memory_used=int(30.5 * GIB), utilization_gpu_pct=97),
            FakeDevice(memory_total=32 * GIB, memory_used=26 * GIB, utilization_gpu_pct=70),
        ]
    )
    profile = load_profile("video")
    assert applies(find_runbook("gpu-memory"), profile)
    memory = {r.name: r.status for r in Runbook("t", profile).evaluate("gpu_memory").results}
    assert memory == {"gpu_memory[gpu0]": Status.CRITICAL, "gpu_memory[gpu1]": Status.OK}
    free = {r.name: r.status for r in Runbook("t", profile).evaluate("gpu_free_memory").results}
    assert free == {"gpu_free_memory[gpu0]": Status.CRITICAL, "gpu_free_memory[gpu1]": Status.OK}
    busy = {r.name: r.status for r in Runbook("t", profile).evaluate("gpu_utilization").results}
    assert busy == {"gpu_utilization[gpu0]": Status.CRITICAL, "gpu_utilization[gpu1]": Status.OK}


def test_the_hourly_monitor_judges_the_days_cost_and_redis_memory(video_profile: Profile) -> None:
    """The hourly script's $150 budget, and the manual's Redis `maxmemory 8gb allkeys-lru`
    against a Redis started without a limit."""
    runbook = Runbook("t", video_profile)
    (cost,) = runbook.evaluate("daily_cost").results
    assert cost.status is Status.OK and cost.value < 150, cost.summary
    (memory,) = runbook.evaluate("redis_maxmemory").results
    assert memory.status is Status.WARNING, memory.summary


def test_backups_run_every_30_minutes_and_age_is_judged_at_the_rpo(
    video_profile: Profile,
) -> None:
    """Database and Redis together every 30 min (one schedule entry per runbook); a backup
    45 min old is a missed run, one over an hour breaks the manual's recovery point."""
    (entry,) = [e for e in load_schedule() if (e.job, e.profile) == ("backup", "video")]
    assert entry.cron == "*/30 * * * *" and entry.parameters == {"apply": True}
    folder = video_profile.backup_dir()
    folder.mkdir(parents=True, exist_ok=True)
    runbook = Runbook("t", video_profile)
    statuses = []
    for minutes in (70, 50, 10):
        taken = utc_now() - timedelta(minutes=minutes)
        (folder / f"video-{taken.strftime(backups.STAMP)}{backups.suffix(video_profile)}").touch()
        (folder / backups.redis_name(video_profile, taken)).touch()
        (age,) = runbook.evaluate("backup_age").results
        (redis_age,) = runbook.evaluate("redis_backup_age").results
        assert age.status is redis_age.status
        statuses.append(age.status)
    assert statuses == [Status.CRITICAL, Status.WARNING, Status.OK]


def test_restore_time_is_judged_at_the_manuals_rto(video_profile: Profile) -> None:
    spec = catalogue()["restore_time"]
    settings = video_profile.check_settings("restore_time")
    warning, critical = spec.thresholds(settings.warning, settings.critical)
    assert [judge(seconds, warning, critical) for seconds in (600, 2400, 4000)] == [
        Status.OK,
        Status.WARNING,
        Status.CRITICAL,
    ]


def test_the_manuals_corruption_queries_find_the_planted_rows(video_profile: Profile) -> None:
    """Its two queries: a completed video without `completed_at` (none planted) and cost
    lines below $0 or above $10 (the negative-cost video's three lines)."""
    found = {r.name: r for r in Runbook("t", video_profile).evaluate("invariant").results}
    assert found["invariant[cost_out_of_range]"].status is Status.CRITICAL
    assert found["invariant[cost_out_of_range]"].value == 3
    assert "invariant[completed_without_time]" not in found or (
        found["invariant[completed_without_time]"].status is Status.OK
    )


def test_incident_levels_follow_the_manuals_escalation_path(video_profile: Profile) -> None:
    """The demo's $3.45 video is a cost overrun: P1, escalate at once; stuck jobs alone
    are the on-call engineer's (P3); a table to vacuum waits for the next day (P4)."""
    runbook = Runbook("t", video_profile)
    cost = runbook.evaluate("max_item_cost").results
    stuck = runbook.evaluate("stuck_jobs").results
    rules = video_profile.severity
    assert classify(cost + stuck, rules).level == "P1"
    assert classify(stuck, rules).level == "P3"
    vacuum = CheckResult("pg_dead_tuples[video_queue]", Status.WARNING)
    assert classify([vacuum], rules).level == "P4"


def test_the_manuals_symptoms_and_quick_commands_open_runbooks_that_apply(
    seeded: dict[str, str],
) -> None:
    assert manual_problems("video") == []
    assert problems(MANUALS / "video.md") == []
    commands = load_profile("video").manual.commands
    assert set(commands) == {
        "queuedepth",
        "processing",
        "todaycount",
        "todaycost",
        "gpucheck",
        "pipelinelogs",
        "restartpipeline",
        "emergency",
    }
    assert Path(MANUALS / "video.md").read_text().count("| works |") >= 37


def _run_in_process(name: str, **parameters: object) -> Runbook:
    """The runbook's own code cells, run in this process in their order (so the NVML
    stand-in can play the render host's cards): the parameters cell with its defaults,
    then `parameters` over them, then every step. Returns the notebook's `rb`."""
    notebook = nbformat.read(find_runbook(name), as_version=4)
    namespace: dict[str, object] = {}
    for cell in notebook.cells:
        if cell.cell_type == "code":
            exec(compile(cell.source, f"{name}:{cell.id}", "exec"), namespace)
            if "parameters" in cell.metadata.get("tags", []):
                namespace.update(parameters)
    runbook = namespace["rb"]
    assert isinstance(runbook, Runbook)
    return runbook


@pytest.fixture
def render_host(seeded: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """VIDEO_GPU set, and the stand-in pynvml playing three cards: one over the manual's
    95 % utilisation and 30 GB of 32, one in its 85-95 % band, one in its normal range."""
    monkeypatch.setenv("VIDEO_GPU", "1")
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml)
    fake_pynvml.configure(
        [
            FakeDevice(memory_total=32 * GIB, memory_used=int(30.5 * GIB), utilization_gpu_pct=97),
            FakeDevice(memory_total=32 * GIB, memory_used=20 * GIB, utilization_gpu_pct=90),
            FakeDevice(memory_total=32 * GIB, memory_used=16 * GIB, utilization_gpu_pct=70),
        ]
    )


def test_the_gpu_runbooks_judge_utilisation_in_the_manuals_bands(render_host: None) -> None:
    """The manual's GPU utilisation KPI (60-85 % normal, 85-95 % warning, over 95 %
    critical), read by the gpu-memory runbook run whole on the render host, and a step of
    the morning check."""
    assert "gpu_utilization" in steps(find_runbook("morning-check"))
    runbook = _run_in_process("gpu-memory", profile="video")
    busy = {r.name: r.status for r in runbook.results if r.name.startswith("gpu_utilization")}
    assert busy == {
        "gpu_utilization[gpu0]": Status.CRITICAL,
        "gpu_utilization[gpu1]": Status.WARNING,
        "gpu_utilization[gpu2]": Status.OK,
    }
    assert runbook.status is Status.CRITICAL


def test_queue_not_processing_finds_a_worker_waiting_on_a_lock(
    seeded: dict[str, str], server: PostgresServer
) -> None:
    """The manual's diagnosis of a queue that does not move: besides the processing set
    and Redis, the ungranted locks. A worker holds a row of video_queue in an open
    transaction and another worker's UPDATE of it waits: the runbook names the holder."""
    profile = load_profile("video")
    (row,) = [r.value for r in Runbook("t", profile).evaluate("pg_blocked_sessions").results]
    assert row == 0
    holder = psycopg.connect(server.url("video"), application_name="pipeline-worker")
    waiter = psycopg.connect(server.url("video"), application_name="pipeline-worker")
    blocker = holder.info.backend_pid
    try:
        holder.execute("UPDATE video_queue SET error = 'held by a stalled worker' WHERE id = 1")
        waiting = threading.Thread(
            target=lambda: waiter.execute("UPDATE video_queue SET priority = 0 WHERE id = 1"),
            daemon=True,
        )
        waiting.start()
        deadline = time.monotonic() + 10
        while blocking_chains(profile).empty and time.monotonic() < deadline:
            time.sleep(0.05)
        runbook = _run_in_process("queue-not-processing", profile="video")
    finally:
        holder.close()  # rolled back: the row is as the demo left it, the UPDATE goes on
        waiting.join(timeout=10)
        waiter.close()  # rolled back too
    found = {r.name: r for r in runbook.results}
    locks = found["pg_blocked_sessions"]
    assert locks.status is Status.CRITICAL and locks.value == 1, locks.summary
    assert f"on pid {blocker}" in locks.summary
    assert "held by a stalled worker" in locks.summary
    assert found["processing_drift"].status is not Status.OK  # the demo's planted orphan
    assert found["redis_reachable"].status is Status.OK


def test_post_recovery_validation_checks_database_redis_api_queue_and_gpu(
    render_host: None, health_api: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The manual's five recovery checks, the runbook run whole on the render host: the
    database, Redis, the API's detailed health, the queue and the GPUs (a card still
    full after the restart is CRITICAL)."""
    monkeypatch.setenv("VIDEO_API_URL", health_api)
    runbook = _run_in_process("post-recovery-validation", profile="video")
    found = {r.name: r.status for r in runbook.results}
    for ok in ("database_reachable", "redis_reachable", "http_endpoint[api]", "queue_depth"):
        assert found.get(ok) is Status.OK, (ok, found)
    assert found["gpu_memory[gpu0]"] is Status.CRITICAL
    assert found["gpu_memory[gpu2]"] is Status.OK
    assert "processing_drift" in found and "stuck_jobs" in found


def test_monthly_maintenance_looks_for_both_of_the_manuals_key_indexes(
    seeded: dict[str, str], server: PostgresServer
) -> None:
    """The queue's index by status and the costs' index by time, each a step of the
    monthly maintenance: both on the demo; without the second, the statement to add it."""
    notebook = find_runbook("monthly-maintenance")
    assert {"pg_queue_index", "pg_cost_index"} <= set(steps(notebook))
    profile = load_profile("video")
    runbook = Runbook("t", profile)
    (queue,) = runbook.evaluate("pg_queue_index").results
    (costs,) = runbook.evaluate("pg_cost_index").results
    assert queue.status is Status.OK and queue.value == 0, queue.summary
    assert costs.status is Status.OK and "pipeline_costs_recent" in costs.summary
    engine = server.engine("video")
    try:
        with engine.begin() as connection:
            connection.exec_driver_sql("DROP INDEX pipeline_costs_recent")
        (missing,) = Runbook("t", profile).evaluate("pg_cost_index").results
    finally:
        with engine.begin() as connection:
            connection.exec_driver_sql(
                "CREATE INDEX IF NOT EXISTS pipeline_costs_recent "
                "ON pipeline_costs (created_at DESC)"
            )
        engine.dispose()
    assert missing.status is Status.WARNING and missing.value == 1
    assert "CREATE INDEX CONCURRENTLY ON pipeline_costs (created_at DESC)" in missing.summary
