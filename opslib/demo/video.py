"""`opslib demo video`: seed the video pipeline's PostgreSQL and Redis with a realistic
queue and the problems its manual is about, so every video runbook has something to find.

Planted: jobs stuck in processing, an orphan in the Redis processing set and a job the
set has lost, a video over the $3 cost limit, and rows breaking the profile's invariants
(negative cost, completed without output, started before created, a cost without video).
The pipeline's log (a line per job started, finished or failed) goes into the profile's
log folder, as the demo's own log does, so the error-rate and log steps have one to read.
Its queue stores times as `timestamptz`, the type PostgreSQL recommends, so the everyday
path reads them. It writes only into a database it created itself (marked by an
`opslib_demo` table) and refuses any other that already has a `video_queue`.
"""

from __future__ import annotations

from pathlib import Path

from opslib import paths
from opslib.clock import utc_now
from opslib.demo import tables as demo_tables
from opslib.demo.builtin import story
from opslib.demo.common import log_line
from opslib.probes import ProbeError, db
from opslib.probes.redis import client
from opslib.profiles import Profile

CHANNELS = {"extract": "tech-reviews", "transform": "gaming", "load": "cooking"}
COST_SPLIT = {"gpu": 0.6, "api": 0.3, "storage": 0.1}
SCHEMA = [
    """CREATE TABLE video_queue (
        id bigint PRIMARY KEY, channel text NOT NULL, status text NOT NULL,
        priority integer NOT NULL DEFAULT 0, created_at timestamptz NOT NULL,
        started_at timestamptz, completed_at timestamptz, cost_usd numeric(8, 2), error text,
        gpu_id integer, output_path text)""",
    "CREATE INDEX video_queue_status_started ON video_queue (status, started_at)",
    # covering: failure rate and throughput count (completed_at, status) from the index alone
    "CREATE INDEX video_queue_completed ON video_queue (completed_at, status)",
    """CREATE TABLE pipeline_costs (
        id bigserial PRIMARY KEY, video_id bigint NOT NULL, category text NOT NULL,
        amount_usd numeric(8, 2) NOT NULL, created_at timestamp NOT NULL)""",
    "CREATE INDEX pipeline_costs_video ON pipeline_costs (video_id)",
    # the manual's idx_costs_recent: the day's and the last hour's spend read by time
    "CREATE INDEX pipeline_costs_recent ON pipeline_costs (created_at DESC)",
    """CREATE TABLE pipeline_control (
        key text PRIMARY KEY, value text NOT NULL, updated_at timestamp NOT NULL)""",
]


def _videos() -> list[dict]:
    rows = []
    for job_id, stage, status, created, started, finished, cost, error in story(utc_now()).jobs:
        rows.append(
            {
                "id": job_id,
                "channel": CHANNELS[stage],
                "status": status,
                "priority": 0,
                "created_at": created,
                "started_at": started,
                "completed_at": finished,
                "cost_usd": cost,
                "error": error,
                "gpu_id": None if started is None else job_id % 2,
                "output_path": f"/renders/{job_id}.mp4" if status == "completed" else None,
            }
        )
    return rows


def _plant(videos: list[dict]) -> dict[str, int]:
    """Break a few completed rows on purpose; returns which ids carry which problem."""
    completed = [video for video in videos if video["status"] == "completed"]
    planted = {
        "expensive": completed[-1]["id"],
        "negative_cost": completed[-2]["id"],
        "without_output": completed[-3]["id"],
        "started_before_created": completed[-4]["id"],
    }
    by_id = {video["id"]: video for video in videos}
    by_id[planted["expensive"]]["cost_usd"] = 3.45
    by_id[planted["negative_cost"]]["cost_usd"] = -0.40
    by_id[planted["without_output"]]["output_path"] = None
    broken = by_id[planted["started_before_created"]]
    broken["started_at"], broken["created_at"] = broken["created_at"], broken["started_at"]
    return planted


def seed(profile: Profile) -> dict[str, int]:
    """(Re)create the demo tables and Redis keys; returns the planted ids."""
    videos = _videos()
    planted = _plant(videos)
    costs = [
        {
            "video_id": v["id"],
            "category": category,
            "amount_usd": round(float(v["cost_usd"]) * share, 2),
            "created_at": v["completed_at"],
        }
        for v in videos
        if v["status"] == "completed" and v["cost_usd"] is not None
        for category, share in COST_SPLIT.items()
    ]
    costs.append(
        {"video_id": 999_999, "category": "gpu", "amount_usd": 0.42, "created_at": utc_now()}
    )
    logs = _log_folder(profile)
    demo_tables.refuse_foreign_folder(logs)  # refused before the database is touched
    with db.change(profile) as connection:
        demo_tables.recreate(connection, SCHEMA, {"video_queue": videos, "pipeline_costs": costs})
    demo_tables.replace_folder(logs, _write_log)
    _statement_statistics(profile)
    processing = [str(v["id"]) for v in videos if v["status"] == "processing"]
    queued = [str(v["id"]) for v in videos if v["status"] == "queued"]
    planted["lost"] = int(processing[0])
    planted["orphan"] = planted["expensive"]
    keys = profile.queue.redis_keys
    with client(profile) as connection:
        transaction = connection.pipeline(transaction=True)
        transaction.delete(*keys.values())
        transaction.sadd(keys["processing"], *processing[1:], str(planted["orphan"]))
        if queued:
            transaction.rpush(keys["pending"], *queued[1:])
            transaction.zadd(keys["priority"], {queued[0]: 10})
        transaction.execute()
    return planted


def _statement_statistics(profile: Profile) -> None:
    """pg_stat_statements in the demo database where the server can have it, so the slow
    processing runbook shows where the time goes (the manual's bottleneck hunt). A server
    that does not preload the library, or a role that may not create it, leaves the demo as
    it is: that runbook then says what is missing."""
    try:
        with db.change(profile) as connection:
            connection.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            connection.exec_driver_sql("SELECT count(*) FROM pg_stat_statements")
    except ProbeError:
        return


def _log_folder(profile: Profile) -> Path:
    """The folder of the profile's first log glob (the demo's: under the data folder)."""
    return Path(profile.log_globs()[0]).parent


def _write_log(folder: Path) -> None:
    """The pipeline's log as its workers write it: ISO stamp, level, message."""
    lines = (log_line(moment, level, message) for moment, level, message in story(utc_now()).log)
    (folder / "pipeline.log").write_text("".join(lines), encoding="utf-8")


def where(profile: Profile) -> str:
    """What `seed` writes into, for the command's one line."""
    shown = paths.shown(_log_folder(profile))
    return f"{profile.database_display()}, Redis and {shown}"
