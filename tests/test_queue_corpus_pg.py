"""The example profiles of parameters/examples/ against each project's real PostgreSQL
tables (tests/corpus/*.sql), seeded with a known story relative to now: opslib's depth,
stuck jobs, failure rate and throughput must be exactly what was planted, and a reset
must name exactly the stuck jobs where the queue is a table opslib may write.

Every story: 3 queued, 2 processing and fresh, 2 stuck, failures and successes inside
the 24 h window, and one of each 30 and 40 hours ago (outside it). Each adds the
project's own traps: states that are neither success nor failure (cancelled), waiting
states with an old start (retry), long jobs whose worker is alive, jobs failed for good.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import psycopg
import pytest
from postgres_server import PostgresServer
from queue_corpus import (
    CORPUS,
    NOT_KEPT,
    Moments,
    example,
    measure,
    reset_does_not_apply,
    stuck_ids,
)

from opslib.actions.queue import ResetStuckJobs

Seeder = Callable[[str, str], psycopg.Connection]


@pytest.fixture
def corpus(server: PostgresServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[Seeder]:
    """`corpus(project, VARIABLE)`: a fresh database holding the project's exact tables,
    its URL in the variable the example profile reads; returns a connection to seed it."""
    opened: list[psycopg.Connection] = []

    def create(project: str, variable: str) -> psycopg.Connection:
        url = server.fresh_database("corpus_" + project.replace("-", "_"))
        monkeypatch.setenv(variable, url)
        connection = psycopg.connect(url, autocommit=True)
        opened.append(connection)
        connection.execute((CORPUS / f"{project}.sql").read_text())
        return connection

    yield create
    for connection in opened:
        connection.close()


def reset_plan_ids(project: str) -> list[object]:
    return sorted(change["id"] for change in ResetStuckJobs(example(project)).plan().changes)


def test_pg_boss_queue_depth_stuck_failure_rate_and_throughput_are_exact(corpus: Seeder) -> None:
    db = corpus("pg-boss", "PGBOSS_DSN")
    at = Moments()
    db.execute(  # pgboss.job.name references its queue: the queue row comes first
        "INSERT INTO pgboss.queue (name, policy, retry_limit, retry_delay, retry_backoff,"
        " expire_seconds, retention_seconds, deletion_seconds, partition, table_name)"
        " VALUES ('mail', 'standard', 2, 0, false, 900, 1209600, 604800, false, 'job')"
    )
    story = {  # state, minutes ago: created_on, started_on, completed_on, heartbeat_on
        "queued": [("created", 5, None, None, None), ("created", 8, None, None, None)],
        "retry": [("retry", 60, 50, None, 50)],  # waiting for its next try: queued, not stuck
        # the second fresh job has run for 2 h, but its heartbeat is a minute old
        "fresh": [("active", 10, 3, None, 1), ("active", 150, 120, None, 1)],
        "stuck": [("active", 180, 120, None, 100), ("active", 100, 90, None, None)],
        "failed": [("failed", 200, 190, 180, 185)],
        "completed": [
            ("completed", 70, 65, 60, 61),
            ("completed", 310, 305, 300, 301),
            ("completed", 1210, 1205, 1200, 1201),
        ],
        "cancelled": [("cancelled", 100, None, 90, None)],  # neither success nor failure
        "outside": [("completed", 1810, 1805, 1800, 1801), ("failed", 2410, 2405, 2400, 2401)],
    }
    ids: dict[str, list[uuid.UUID]] = {}
    for kind, rows in story.items():
        ids[kind] = [uuid.uuid4() for _ in rows]
        for job_id, (state, *minutes) in zip(ids[kind], rows, strict=True):
            output = '{"message": "boom"}' if state == "failed" else None
            db.execute(
                "INSERT INTO pgboss.job (id, name, state, created_on, started_on, completed_on,"
                " heartbeat_on, output) VALUES (%s, 'mail', %s, %s, %s, %s, %s, %s)",
                (job_id, state, *map(at.ago, minutes), output),
            )
    profile = example("pg-boss")
    assert measure(profile) == {
        "queue_depth": 2 + 1 + 2 + 2,
        "stuck_jobs": 2,
        "failure_rate": 100 * 1 / (1 + 3),
        "throughput": 3,
        "processing_time": 5 * 60.0,  # each completed job ran 5 min
    }
    assert stuck_ids(profile) == set(ids["stuck"])
    assert reset_plan_ids("pg-boss") == sorted(ids["stuck"])
    applied = ResetStuckJobs(profile).apply(ResetStuckJobs(profile).plan())
    assert applied.changed == 2 and measure(profile)["stuck_jobs"] == 0
    states = dict(db.execute("SELECT id, state::text FROM pgboss.job WHERE started_on IS NULL"))
    assert {states[job_id] for job_id in ids["stuck"]} == {"created"}


def test_oban_queue_depth_stuck_failure_rate_and_throughput_are_exact(corpus: Seeder) -> None:
    db = corpus("oban", "OBAN_DSN")
    at = Moments()
    story = {  # state, attempt, minutes ago: inserted, scheduled, attempted, completed, discarded
        "queued": [("available", 0, 5, 5, None, None, None),
                   ("scheduled", 0, 5, -30, None, None, None),
                   ("retryable", 1, 60, -5, 50, None, None)],  # an old attempt, retrying soon
        "fresh": [("executing", 1, 10, 10, 3, None, None), ("executing", 1, 20, 20, 10, None, None)],
        "stuck": [("executing", 1, 130, 130, 120, None, None),
                  ("executing", 2, 95, 95, 90, None, None)],
        # a job that failed for good is discarded: discarded_at set, completed_at never
        "failed": [("discarded", 3, 200, 200, 190, None, 180)],
        "completed": [("completed", 1, 70, 70, 65, 60, None),
                      ("completed", 1, 310, 310, 305, 300, None),
                      ("completed", 1, 1210, 1210, 1205, 1200, None)],
        "outside": [("completed", 1, 1810, 1810, 1805, 1800, None),
                    ("discarded", 3, 2410, 2410, 2405, None, 2400)],
    }  # fmt: skip
    ids: dict[str, list[int]] = {}
    for kind, rows in story.items():
        ids[kind] = [
            db.execute(
                "INSERT INTO oban_jobs (state, queue, worker, attempt, max_attempts,"
                " inserted_at, scheduled_at, attempted_at, completed_at, discarded_at)"
                " VALUES (%s, 'mailers', 'MyApp.Mailer', %s, 3, %s, %s, %s, %s, %s)"
                " RETURNING id",
                (state, attempt, *map(at.utc, minutes)),
            ).fetchone()[0]
            for state, attempt, *minutes in rows
        ]
    db.execute(  # cancelled: neither a success nor a failure
        "INSERT INTO oban_jobs (state, worker, attempt, cancelled_at) VALUES"
        " ('cancelled', 'MyApp.Mailer', 0, %s)",
        (at.utc(90),),
    )
    profile = example("oban")
    assert measure(profile) == {
        "queue_depth": 3 + 2 + 2,
        "stuck_jobs": 2,
        "failure_rate": 100 * 1 / (1 + 3),
        "throughput": 3,
        "processing_time": 5 * 60.0,  # each completed job ran 5 min
    }
    assert stuck_ids(profile) == set(ids["stuck"])
    assert reset_plan_ids("oban") == sorted(ids["stuck"])
    applied = ResetStuckJobs(profile).apply(ResetStuckJobs(profile).plan())
    assert applied.changed == 2 and measure(profile)["stuck_jobs"] == 0
    rows = db.execute("SELECT id, state::text, attempted_at FROM oban_jobs WHERE id = ANY(%s)",
                      (ids["stuck"],)).fetchall()  # fmt: skip
    assert {(state, attempted) for _, state, attempted in rows} == {("available", None)}


def test_laravel_queue_depth_and_stuck_are_exact_and_what_was_deleted_is_unknown(
    corpus: Seeder,
) -> None:
    db = corpus("laravel", "LARAVEL_DSN")
    at = Moments()
    story = {  # minutes ago: created_at, available_at, reserved_at
        "queued": [(5, 5, None), (8, 8, None), (2, -30, None)],  # the last one delayed
        "fresh": [(10, 10, 3), (20, 20, 10)],
        "stuck": [(130, 130, 120), (95, 95, 90)],
    }
    ids = {
        kind: [
            db.execute(
                "INSERT INTO jobs (queue, payload, attempts, created_at, available_at,"
                " reserved_at) VALUES ('default', '{}', %s, %s, %s, %s) RETURNING id",
                (0 if reserved is None else 1, *map(at.epoch, (created, available, reserved))),
            ).fetchone()[0]
            for created, available, reserved in rows
        ]
        for kind, rows in story.items()
    }
    for number, minutes in enumerate((180, 2400)):  # failures move to failed_jobs
        db.execute(
            "INSERT INTO failed_jobs (uuid, connection, queue, payload, exception, failed_at)"
            " VALUES (%s, 'database', 'default', '{}', 'RuntimeException: boom', %s)",
            (f"failed-{number}", at.utc(minutes)),
        )
    profile = example("laravel")
    assert measure(profile) == {
        "queue_depth": 3 + 2 + 2,
        "stuck_jobs": 2,
        "failure_rate": NOT_KEPT,  # successes are deleted: failures out of an unknown total
        "throughput": NOT_KEPT,
        "processing_time": NOT_KEPT,
    }
    assert stuck_ids(profile) == set(ids["stuck"])
    assert reset_plan_ids("laravel") == sorted(ids["stuck"])
    applied = ResetStuckJobs(profile).apply(ResetStuckJobs(profile).plan())
    assert applied.changed == 2 and measure(profile)["stuck_jobs"] == 0
    reserved = db.execute("SELECT reserved_at FROM jobs WHERE id = ANY(%s)", (ids["stuck"],))
    assert [row[0] for row in reserved] == [None, None]


def test_procrastinate_queue_depth_stuck_failure_rate_and_throughput_are_exact(
    corpus: Seeder,
) -> None:
    db = corpus("procrastinate", "PROCRASTINATE_DSN")
    at = Moments()
    alive, dead = (
        db.execute(
            "INSERT INTO procrastinate_workers (last_heartbeat) VALUES (%s) RETURNING id",
            (at.ago(minutes),),
        ).fetchone()[0]
        for minutes in (1, 100)
    )
    story = {  # status, worker, events as (type, minutes ago)
        "fresh": [("doing", alive, [("deferred", 5), ("started", 3)]),
                  ("doing", alive, [("deferred", 125), ("started", 120)])],  # long, worker alive
        "stuck": [("doing", dead, [("deferred", 125), ("started", 120)]),
                  ("doing", None, [("deferred", 95), ("started", 90)])],  # its worker pruned
        "failed": [("failed", None, [("deferred", 200), ("started", 190), ("failed", 180)]),
                   ("aborted", None, [("deferred", 100), ("started", 95), ("aborted", 60)])],
        "succeeded": [("succeeded", None, [("started", 61), ("succeeded", 60)]),
                      ("succeeded", None, [("started", 301), ("succeeded", 300)]),
                      ("succeeded", None, [("started", 1201), ("succeeded", 1200)])],
        "cancelled": [("cancelled", None, [("deferred", 100), ("cancelled", 90)])],
        "outside": [("succeeded", None, [("started", 1801), ("succeeded", 1800)]),
                    ("failed", None, [("started", 2401), ("failed", 2400)])],
    }  # fmt: skip
    ids: dict[str, list[int]] = {}
    for kind, rows in story.items():  # inserted in their final status: no trigger fires
        ids[kind] = []
        for status, worker, events in rows:
            (job_id,) = db.execute(
                "INSERT INTO procrastinate_jobs (queue_name, task_name, status, worker_id)"
                " VALUES ('default', 'send_mail', %s, %s) RETURNING id",
                (status, worker),
            ).fetchone()
            ids[kind].append(job_id)
            for event, minutes in events:
                db.execute(
                    "INSERT INTO procrastinate_events (job_id, type, at) VALUES (%s, %s, %s)",
                    (job_id, event, at.ago(minutes)),
                )
    for _ in range(3):  # deferred now: the shipped trigger writes their `deferred` event
        db.execute(
            "INSERT INTO procrastinate_jobs (queue_name, task_name, scheduled_at)"
            " VALUES ('default', 'send_mail', %s)",
            (at.ago(-10),),
        )
    profile = example("procrastinate")
    assert measure(profile) == {
        "queue_depth": 3 + 2 + 2,
        "stuck_jobs": 2,
        "failure_rate": 100 * 2 / (2 + 3),  # failed and aborted
        "throughput": 3,
        "processing_time": 60.0,  # each succeeded job ran 1 min
    }
    assert stuck_ids(profile) == set(ids["stuck"])
    reset_does_not_apply(example("procrastinate"))


def test_solid_queue_depth_stuck_failure_rate_and_throughput_are_exact(corpus: Seeder) -> None:
    db = corpus("solid_queue", "SOLID_QUEUE_DSN")
    at = Moments()

    def job(created: float, finished: float | None = None) -> int:
        return db.execute(
            "INSERT INTO solid_queue_jobs (queue_name, class_name, created_at, updated_at,"
            " finished_at) VALUES ('default', 'MailJob', %s, %s, %s) RETURNING id",
            (at.utc(created), at.utc(created), at.utc(finished)),
        ).fetchone()[0]

    def execution(kind: str, job_id: int, minutes: float, **columns: object) -> None:
        names = ", ".join(["job_id", "created_at", *columns])
        db.execute(
            f"INSERT INTO solid_queue_{kind}_executions ({names})"
            f" VALUES ({', '.join(['%s'] * (2 + len(columns)))})",
            (job_id, at.utc(minutes), *columns.values()),
        )

    alive, dead = (
        db.execute(
            "INSERT INTO solid_queue_processes (kind, last_heartbeat_at, pid, created_at, name)"
            " VALUES ('Worker', %s, %s, %s, %s) RETURNING id",
            (at.utc(minutes), 100 + minutes, at.utc(600), f"worker-{minutes}"),
        ).fetchone()[0]
        for minutes in (1, 100)
    )
    queued = [job(5), job(8), job(2)]
    execution("ready", queued[0], 5, queue_name="default")
    execution("scheduled", queued[1], 8, queue_name="default", scheduled_at=at.utc(-30))
    execution(  # waiting for a concurrency limit
        "blocked", queued[2], 2, queue_name="default", concurrency_key="MailJob/1",
        expires_at=at.utc(-15),
    )  # fmt: skip
    claims = {"fresh": [(3, alive), (120, alive)], "stuck": [(120, dead), (90, None)]}
    ids: dict[str, list[int]] = {}
    for kind, rows in claims.items():  # a long job whose process beats is not stuck
        ids[kind] = [job(minutes + 5) for minutes, _ in rows]
        for job_id, (minutes, process) in zip(ids[kind], rows, strict=True):
            execution("claimed", job_id, minutes, process_id=process)
    for minutes in (180, 2400):  # a failure keeps its job row unfinished
        execution("failed", job(minutes + 10), minutes, error='{"message": "boom"}')
    for minutes in (60, 300, 1200, 1800):
        job(minutes + 5, finished=minutes)
    profile = example("solid_queue")
    assert measure(profile) == {
        "queue_depth": 3 + 2 + 2,
        "stuck_jobs": 2,
        "failure_rate": 100 * 1 / (1 + 3),
        "throughput": 3,
        # a finished job keeps no claim, so no start: UNKNOWN, not 0
        "processing_time": "UNKNOWN: 3 job(s) completed in the last 24 h, none with a start "
        "(queue.columns.started_at is empty once a job is done): no time to measure",
    }
    assert stuck_ids(profile) == set(ids["stuck"])
    reset_does_not_apply(example("solid_queue"))


def test_graphile_worker_depth_and_stuck_are_exact_and_what_was_deleted_is_unknown(
    corpus: Seeder,
) -> None:
    db = corpus("graphile-worker", "GRAPHILE_WORKER_DSN")
    at = Moments()
    (task,) = db.execute(
        "INSERT INTO graphile_worker._private_tasks (identifier) VALUES ('send_mail') RETURNING id"
    ).fetchone()
    story = {  # attempts, max_attempts, last_error, minutes ago: created_at, run_at, locked_at
        "queued": [(0, 25, None, 5, 5, None), (0, 25, None, 8, 8, None),
                   (1, 25, "boom", 60, -10, None)],  # retrying: backing off until run_at
        "fresh": [(1, 25, None, 10, 10, 3), (1, 25, None, 20, 20, 10)],
        "stuck": [(1, 25, None, 130, 130, 120), (1, 25, None, 95, 95, 90)],
        "failed": [(25, 25, "boom", 300, 200, None)],  # out of attempts: failed for good
    }  # fmt: skip
    ids = {
        kind: [
            db.execute(
                "INSERT INTO graphile_worker._private_jobs (task_id, attempts, max_attempts,"
                " last_error, created_at, run_at, locked_at, locked_by)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
                (task, attempts, most, error, at.ago(created), at.ago(run), at.ago(locked),
                 None if locked is None else "worker-1"),
            ).fetchone()[0]
            for attempts, most, error, created, run, locked in rows
        ]
        for kind, rows in story.items()
    }  # fmt: skip
    profile = example("graphile-worker")
    assert measure(profile) == {
        "queue_depth": 3 + 2 + 2,  # the job failed for good is not waiting
        "stuck_jobs": 2,
        "failure_rate": NOT_KEPT,  # done jobs are deleted: failures out of an unknown total
        "throughput": NOT_KEPT,
        "processing_time": NOT_KEPT,
    }
    assert stuck_ids(profile) == set(ids["stuck"])
    reset_does_not_apply(example("graphile-worker"))
