"""Queue resets across stores: the stuck reset moves the same ids in PostgreSQL and Redis
in one plan (and says which side failed), and a targeted reset touches only the ids it is
given, at the stage it is given, with the progress column refreshed as the table writes it."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from postgres_server import PostgresServer
from redis_server import RedisServer
from support import RedisQueue, Workspace

from opslib.actions import Outcome, execute
from opslib.actions.queue import ResetJobs, ResetStuckJobs
from opslib.actions.redis import ClearOrphans
from opslib.archive.ledger import Ledger
from opslib.clock import utc_now
from opslib.context import RunContext
from opslib.probes import db
from opslib.probes.queue import stuck_job_rows
from opslib.probes.redis import processing_drift
from opslib.profiles import Profile, load_profile

ISO_MS_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


def run(action: object, *, apply: bool = False) -> Outcome:
    return execute(action, RunContext.current("stuck-pipeline", "test"), Ledger, apply=apply)  # type: ignore[arg-type]


@dataclass
class VideoQueue:
    """The PostgreSQL jobs table with a progress column, mirrored in a Redis that agrees
    with it: every processing row in the processing set, nothing else there."""

    profile_path: str
    engine: sa.Engine
    redis: RedisServer
    stuck: list[int]

    @property
    def profile(self) -> Profile:
        return load_profile(self.profile_path)

    def rows(self) -> dict[int, tuple]:
        with self.engine.connect() as connection:
            query = "SELECT id, stage, status, started_at, updated_at FROM jobs"
            return {row[0]: row[1:] for row in connection.exec_driver_sql(query)}

    def redis_state(self) -> tuple[set[str], list[str]]:
        client = self.redis.client()
        return client.smembers("queue:processing"), client.lrange("queue:pending", 0, -1)

    def status_of(self, status: str) -> list[int]:
        return sorted(job for job, row in self.rows().items() if row[1] == status)


@pytest.fixture
def video_queue(
    redis_queue: RedisQueue, redis_server: RedisServer, server: PostgresServer
) -> Iterator[VideoQueue]:
    engine = server.engine("pipeline")
    with engine.begin() as connection:
        connection.exec_driver_sql("ALTER TABLE jobs ADD COLUMN updated_at timestamp")
    client = redis_server.client()
    client.srem("queue:processing", redis_queue.orphan_done, redis_queue.orphan_queued)
    client.sadd("queue:processing", redis_queue.lost)
    profile = Path(redis_queue.profile)
    profile.write_text(profile.read_text() + "  columns:\n    updated_at: updated_at\n")
    stuck = sorted(stuck_job_rows(load_profile(str(profile)))["id"].tolist())
    yield VideoQueue(str(profile), engine, redis_server, stuck)
    engine.dispose()


def test_the_stuck_reset_dry_run_plans_both_stores_and_changes_neither(
    video_queue: VideoQueue,
) -> None:
    rows, redis_before = video_queue.rows(), video_queue.redis_state()
    outcome = run(ResetStuckJobs(video_queue.profile))
    assert outcome.mode == "dry-run", outcome.message
    assert "and in Redis take them out of queue:processing / onto queue:pending" in outcome.message
    assert sorted(change["id"] for change in outcome.plan.changes) == video_queue.stuck
    assert all(
        change["redis"] == {"srem": "queue:processing", "rpush": "queue:pending"}
        for change in outcome.plan.changes
    )
    shown = outcome.plan.context
    assert set(shown["queue:processing"]) == {"remove"} and set(shown["queue:pending"]) == {"push"}
    assert video_queue.rows() == rows and video_queue.redis_state() == redis_before


def test_the_stuck_reset_moves_the_ids_in_both_stores_and_leaves_no_drift(
    video_queue: VideoQueue,
) -> None:
    assert processing_drift(video_queue.profile).value == 0
    pending_before = video_queue.redis_state()[1]
    outcome = run(ResetStuckJobs(video_queue.profile), apply=True)
    assert (outcome.mode, outcome.result.status.name) == ("applied", "OK"), outcome.message
    assert "3 changed (matching before 3, after 0)" in outcome.message
    rows = video_queue.rows()
    for job in video_queue.stuck:
        _stage, status, started_at, updated_at = rows[job]
        assert (status, started_at) == ("queued", None)
        assert abs(updated_at - utc_now()) < timedelta(minutes=1), "native, naive UTC"
    processing, pending = video_queue.redis_state()
    members = [str(job) for job in video_queue.stuck]
    assert not processing & set(members)
    assert pending == pending_before + members
    assert processing_drift(video_queue.profile).value == 0
    assert outcome.applied.backup["redis"]["removed"] == members


def test_a_reset_job_taken_again_is_not_stuck_until_it_stops_moving(
    video_queue: VideoQueue,
) -> None:
    """The reset refreshes the progress column: a worker that takes the job again and
    keeps the old start does not make it look stuck at once; no progress for
    stuck_after does."""
    run(ResetStuckJobs(video_queue.profile), apply=True)
    job = video_queue.stuck[0]
    with video_queue.engine.begin() as connection:
        connection.exec_driver_sql(
            "UPDATE jobs SET status = 'processing', started_at = now() - interval '3 hours' "
            f"WHERE id = {job}"
        )
    assert job not in stuck_job_rows(video_queue.profile)["id"].tolist()
    with video_queue.engine.begin() as connection:
        connection.exec_driver_sql(
            f"UPDATE jobs SET updated_at = updated_at - interval '31 minutes' WHERE id = {job}"
        )
    assert stuck_job_rows(video_queue.profile)["id"].tolist() == [job]


@contextmanager
def then(after_commit: Callable[[], None]) -> Iterator[None]:
    """`db.change` that calls `after_commit` once its transaction has committed."""
    real = db.change

    @contextmanager
    def change(profile: Profile) -> Iterator[sa.Connection]:
        with real(profile) as connection:
            yield connection
        after_commit()

    db.change = change  # type: ignore[assignment]
    try:
        yield
    finally:
        db.change = real


@pytest.fixture
def own_redis(video_queue: VideoQueue, monkeypatch: pytest.MonkeyPatch) -> Iterator[RedisServer]:
    """A Redis of this test's own, holding the processing set, that the test may stop."""
    own = RedisServer.start()
    own.client().sadd("queue:processing", *video_queue.redis_state()[0])
    monkeypatch.setenv("OPSLIB_TEST_REDIS_URL", own.url)
    yield own
    own.stop()


def test_redis_lost_after_the_table_changed_is_critical_and_names_each_side(
    video_queue: VideoQueue, own_redis: RedisServer
) -> None:
    with then(own_redis.stop):
        outcome = run(ResetStuckJobs(video_queue.profile), apply=True)
    members = [str(job) for job in video_queue.stuck]
    assert (outcome.mode, outcome.result.status.name) == ("failed", "CRITICAL")
    table_side, _, redis_side = outcome.message.partition("but Redis could not be changed for")
    assert "the table put [" in table_side and redis_side
    assert all(f"'{member}'" in table_side and f"'{member}'" in redis_side for member in members)
    assert "Redis unreachable" in outcome.message
    assert all(video_queue.rows()[job][1] == "queued" for job in video_queue.stuck)


def test_redis_down_before_the_change_changes_nothing(
    video_queue: VideoQueue, own_redis: RedisServer
) -> None:
    rows = video_queue.rows()
    own_redis.stop()
    outcome = run(ResetStuckJobs(video_queue.profile), apply=True)
    assert (outcome.mode, outcome.result.status.name) == ("failed", "UNKNOWN")
    assert outcome.message.startswith("apply failed: Redis unreachable"), outcome.message
    assert "Redis could not be read now" in outcome.plan.summary
    assert video_queue.rows() == rows


def test_a_targeted_reset_on_postgres_and_redis_moves_only_the_named_ids(
    video_queue: VideoQueue,
) -> None:
    lost, done = video_queue.status_of("processing")[0], video_queue.status_of("completed")[0]
    rows, (processing, pending) = video_queue.rows(), video_queue.redis_state()
    action = ResetJobs(video_queue.profile, f"{lost}, {done}, 424242, x7", stage="load")
    outcome = run(action, apply=True)
    assert outcome.mode == "applied", outcome.message
    assert (
        f"reset 1 job(s) to queued at stage load and in Redis take them out of "
        f"queue:processing / onto queue:pending; left alone: {done} (completed: a finished job "
        "is not reset), 424242 (no such id), x7 (no such id)" == outcome.plan.summary
    )
    after = video_queue.rows()
    assert {job for job in rows if rows[job] != after[job]} == {lost}
    stage, status, started_at, updated_at = after[lost]
    assert (stage, status, started_at) == ("load", "queued", None)
    assert isinstance(updated_at, datetime) and abs(updated_at - utc_now()) < timedelta(minutes=1)
    assert video_queue.redis_state() == (processing - {str(lost)}, [*pending, str(lost)])


def test_an_unknown_id_plans_nothing_and_an_unknown_stage_is_refused(
    video_queue: VideoQueue,
) -> None:
    nothing = run(ResetJobs(video_queue.profile, "x7"))
    assert nothing.mode == "nothing-to-do" and "x7 (no such id)" in nothing.message
    outcome = run(ResetJobs(video_queue.profile, str(video_queue.stuck[0]), stage="lod"))
    assert outcome.mode == "failed"
    assert (
        "stage 'lod' is not a stage of the queue (queue.columns.stage holds extract, load, "
        "transform) (did you mean load?)" in outcome.message
    )


def test_clearing_orphans_shares_the_move_and_pushes_no_id_twice(
    redis_queue: RedisQueue, redis_server: RedisServer
) -> None:
    client = redis_server.client()
    client.rpush("queue:pending", redis_queue.orphan_queued)
    pending = client.lrange("queue:pending", 0, -1)
    outcome = run(ClearOrphans(load_profile(redis_queue.profile)), apply=True)
    assert "2 changed (matching before 2, after 0)" in outcome.message, outcome.message
    assert client.lrange("queue:pending", 0, -1) == pending
    assert outcome.applied.backup["processing_members_removed"] == sorted(
        [redis_queue.orphan_done, redis_queue.orphan_queued]
    )


IDEAS = """
CREATE TABLE ideas (
    idea_id text PRIMARY KEY, current_stage text NOT NULL, status text NOT NULL,
    created_at text NOT NULL, started_at text, updated_at text NOT NULL, completed_at text,
    error text
)"""
IDEAS_PROFILE = """name: ideas-lite
targets:
  database:
    url: sqlite:///{path}
queue:
  table: ideas
  columns:
    id: idea_id
    stage: current_stage
    started_at: started_at
    finished_at: completed_at
    updated_at: updated_at
    error: error
  stuck_after: 6 h
"""


@pytest.fixture
def ideas(tmp_path: Path) -> tuple[str, Path]:
    """An ideas-like queue in SQLite, times as ISO text with milliseconds and Z: two ideas
    stuck for hours, one processing and moving, one completed, one failed."""
    path = tmp_path / "ideas.db"

    def iso(hours_ago: float) -> str:
        moment = utc_now() - timedelta(hours=hours_ago)
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"

    rows = [
        ("idea-0001", "research", "processing", iso(10), iso(9), iso(8), None, None),
        ("idea-0002", "deck", "processing", iso(10), iso(9), iso(7), None, None),
        ("idea-0003", "deck", "processing", iso(2), iso(1), iso(0.1), None, None),
        ("idea-0004", "campaign", "completed", iso(30), iso(29), iso(28), iso(28), None),
        ("idea-0005", "validation", "failed", iso(30), iso(29), iso(28), iso(28), "timeout"),
    ]
    with sqlite3.connect(path) as connection:
        connection.execute(IDEAS)
        connection.executemany("INSERT INTO ideas VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
    profile = tmp_path / "ideas-lite.yaml"
    profile.write_text(IDEAS_PROFILE.format(path=path))
    return str(profile), path


def idea_rows(path: Path) -> dict[str, tuple]:
    with sqlite3.connect(path) as connection:
        return {row[0]: row[1:] for row in connection.execute("SELECT * FROM ideas")}


def test_a_targeted_reset_on_sqlite_touches_only_the_ids_and_writes_iso_progress(
    ideas: tuple[str, Path],
) -> None:
    profile, path = ideas
    before = idea_rows(path)
    action = ResetJobs(load_profile(profile), ["idea-0001", "idea-0005", "idea-0004", "idea-9"])
    dry = run(ResetJobs(load_profile(profile), action.ids, stage="validation"))
    assert dry.mode == "dry-run" and idea_rows(path) == before
    outcome = run(ResetJobs(load_profile(profile), action.ids, stage="validation"), apply=True)
    assert outcome.mode == "applied", outcome.message
    assert "2 changed (matching before 2, after 0)" in outcome.message
    assert "idea-0004 (completed: a finished job is not reset), idea-9 (no such id)" in (
        outcome.plan.summary
    )
    after = idea_rows(path)
    assert {idea for idea in before if before[idea] != after[idea]} == {"idea-0001", "idea-0005"}
    for idea in ("idea-0001", "idea-0005"):
        stage, status, _created, started, updated, completed, error = after[idea]
        assert (stage, status, started, completed, error) == (
            "validation", "queued", None, None, None,
        )  # fmt: skip
        assert ISO_MS_Z.match(updated), updated
        stamped = datetime.strptime(updated, "%Y-%m-%dT%H:%M:%S.%fZ")
        assert abs(stamped - utc_now()) < timedelta(minutes=1)
    backup = outcome.applied.backup["before_image"]
    assert {row["idea_id"]: row["error"] for row in backup} == {
        "idea-0001": None,
        "idea-0005": "timeout",
    }


def test_the_stuck_reset_on_sqlite_refreshes_iso_progress(ideas: tuple[str, Path]) -> None:
    profile, path = ideas
    outcome = run(ResetStuckJobs(load_profile(profile)), apply=True)
    assert "2 changed (matching before 2, after 0)" in outcome.message
    after = idea_rows(path)
    for idea in ("idea-0001", "idea-0002"):
        assert after[idea][1] == "queued" and ISO_MS_Z.match(after[idea][4])
    assert stuck_job_rows(load_profile(profile)).empty
    assert after["idea-0003"][1] == "processing", "a job still moving is not stuck"


def test_no_ids_plans_nothing_and_a_job_that_finished_meanwhile_is_left_alone(
    ideas: tuple[str, Path],
) -> None:
    profile, path = ideas
    assert run(ResetJobs(load_profile(profile), " , ")).mode == "nothing-to-do"
    action = ResetJobs(load_profile(profile), "idea-0001,idea-0002")
    plan = action.plan()
    with sqlite3.connect(path) as connection:
        connection.execute("UPDATE ideas SET status = 'completed' WHERE idea_id = 'idea-0002'")
    applied = action.apply(plan)
    assert (applied.changed, applied.skipped) == (1, ["idea-0002"])
    assert idea_rows(path)["idea-0002"][1] == "completed"


def test_reset_jobs_runbook_resets_the_named_demo_job(workspace: Workspace) -> None:
    database = workspace.data / "demo" / "pipeline.db"

    def jobs() -> dict[int, str]:
        with sqlite3.connect(database) as connection:
            return dict(connection.execute("SELECT id, stage || '/' || status FROM jobs"))

    before, stuck = jobs(), 579
    result = workspace.opslib(
        "run", "reset-jobs", "-p", f"ids={stuck},1", "-p", "stage=load", "-p", "apply=true"
    )
    assert "applied plan" in result.stdout, result.stdout + result.stderr
    (page,) = [path for path in workspace.archive_files() if path.suffix == ".html"]
    assert "left alone: 1 (completed: a finished job is not reset)" in page.read_text()
    after = jobs()
    assert before[stuck] == "transform/processing" and after[stuck] == "load/queued"
    assert {job for job in before if before[job] != after[job]} == {stuck}
