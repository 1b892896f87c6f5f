"""The processing set at production size: a million members reconciled with a million-row
queue table in bounded batches, within the profile's timeouts, against real servers."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from postgres_server import PostgresServer
from redis_server import RedisServer
from support import RedisQueue

from opslib.probes import TargetUnreachable
from opslib.probes.redis import reconciliation
from opslib.profiles import load_profile

FIRST, LAST = 1_000_001, 2_000_000  # a million processing rows, far above the demo's ids
LOST = [str(job) for job in range(FIRST, FIRST + 4)]  # processing, absent from the set
FINISHED = [str(job) for job in range(FIRST + 4, FIRST + 10)]  # completed, still in the set
NO_ROW = [str(LAST + 1), "job-x", "0" + str(FIRST + 20)]  # no row has these ids
SADD_BATCH = 20_000


@pytest.fixture
def million(
    redis_queue: RedisQueue, server: PostgresServer, redis_server: RedisServer
) -> Iterator[None]:
    """The planted queue plus a million processing jobs, all but LOST in the set."""
    engine = server.engine("pipeline")
    with engine.begin() as connection:
        connection.exec_driver_sql(
            "INSERT INTO jobs (id, stage, status, created_at, started_at) "
            f"SELECT g, 'encode', 'processing', now(), now() FROM generate_series({FIRST}, {LAST}) g"
        )
        connection.execute(
            sa.text(
                "UPDATE jobs SET status = 'completed', finished_at = now() WHERE id = ANY(:ids)"
            ),
            {"ids": [int(job) for job in FINISHED]},
        )
        connection.exec_driver_sql("ANALYZE jobs")  # as autovacuum would after such a load
    engine.dispose()
    members = [str(job) for job in range(FIRST + len(LOST), LAST + 1)] + NO_ROW
    client = redis_server.client()
    pipeline = client.pipeline(transaction=False)
    for start in range(0, len(members), SADD_BATCH):
        pipeline.sadd("queue:processing", *members[start : start + SADD_BATCH])
    pipeline.execute()
    yield
    client.unlink("queue:processing")


def test_a_million_member_set_is_reconciled_exactly_within_the_timeouts(
    redis_queue: RedisQueue, million: None
) -> None:
    started = time.monotonic()
    drift = reconciliation(load_profile(redis_queue.profile))
    elapsed_s = time.monotonic() - started
    problems = {(row.id, row.problem, row.table_state) for row in drift.listed.itertuples()}
    assert problems == {
        (redis_queue.lost, "lost", "processing"),
        (redis_queue.orphan_done, "orphan", "completed"),
        (redis_queue.orphan_queued, "orphan", "queued"),
        *((job, "lost", "processing") for job in LOST),
        *((job, "orphan", "completed") for job in FINISHED),
        *((job, "orphan", "missing") for job in NO_ROW),
    }
    assert len(drift.listed) == drift.total == len(problems), (
        "an id SSCAN returned twice is counted once"
    )
    # each statement and command stayed under the profile's 1 s timeouts, or it had
    # failed; the whole took 9-14 s on a busy 2-core machine (one query for all the ids
    # took 12-17 s and 1.1 GB there, then failed on PostgreSQL's 65,535 parameters)
    assert elapsed_s < 20, f"took {elapsed_s:.1f} s"


def test_redis_paused_mid_reconciliation_fails_within_the_socket_timeout(
    redis_queue: RedisQueue, million: None, redis_server: RedisServer
) -> None:
    pause = threading.Timer(
        0.5, redis_server.client().execute_command, ("CLIENT", "PAUSE", "2500", "ALL")
    )
    pause.start()
    started = time.monotonic()
    try:
        with pytest.raises(TargetUnreachable, match="did not answer within 1 s"):
            reconciliation(load_profile(redis_queue.profile))
        assert time.monotonic() - started < 0.5 + 1 + 0.5
    finally:
        pause.join()
        redis_server.client().execute_command("CLIENT", "UNPAUSE")  # answered once it ends
