"""The built-in demo pipeline: a seeded SQLite job queue and an application log.

Its times are ISO 8601 text (`2026-12-03T09:55:00.000Z`), as many services write them
rather than the form SQLAlchemy writes, so the everyday path reads a real-world encoding.
It tells a small story relative to *now*, so a first morning check finds something:
three jobs stuck in `transform` for hours and a burst of rate-limit errors in the log
(the check ends WARNING), while throughput and the database itself are healthy.
"""

from __future__ import annotations

import random
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from opslib import paths
from opslib.clock import utc_now
from opslib.demo.common import created_at, log_line
from opslib.demo.common import iso_stamp as stamp

STAGES = ("extract", "transform", "load")
SCHEMA = """
CREATE TABLE jobs (
    id INTEGER PRIMARY KEY,
    stage TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('queued', 'processing', 'completed', 'failed')),
    created_at TIMESTAMP NOT NULL,
    started_at TIMESTAMP,
    finished_at TIMESTAMP,
    cost_usd REAL,
    error TEXT
);
CREATE INDEX jobs_status_started ON jobs (status, started_at);
CREATE INDEX jobs_finished ON jobs (finished_at);
CREATE TABLE demo_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
HOURS_OF_HISTORY = 48
JOB_EVERY_MIN = 5
STALE_AFTER = timedelta(hours=12)
FAILURES = ("upstream returned HTTP 502", "schema mismatch in batch", "worker lost heartbeat")


def demo_dir() -> Path:
    return paths.data_dir() / "demo"


def database_path() -> Path:
    return demo_dir() / "pipeline.db"


def log_path() -> Path:
    return demo_dir() / "logs" / "pipeline.log"


@dataclass
class DemoStory:
    """Rows and log lines of the demo, generated from one seed."""

    jobs: list[tuple]
    log: list[tuple[datetime, str, str]]


def story(now: datetime, seed: int = 7) -> DemoStory:
    """The demo's jobs (rows in `jobs` column order) and log lines, relative to `now`."""
    rng = random.Random(seed)
    jobs: list[tuple] = []
    log: list[tuple[datetime, str, str]] = []
    start = now - timedelta(hours=HOURS_OF_HISTORY)
    count = HOURS_OF_HISTORY * 60 // JOB_EVERY_MIN
    for number in range(1, count + 1):
        created = start + timedelta(minutes=number * JOB_EVERY_MIN - rng.random() * 2)
        stage = STAGES[number % 3]
        age_min = (now - created).total_seconds() / 60
        started = created + timedelta(minutes=rng.uniform(0.5, 3))
        finished = started + timedelta(minutes=rng.uniform(2, 12))
        cost = round(rng.uniform(0.05, 0.6), 2)
        if age_min < 20:
            jobs.append((number, stage, "queued", stamp(created), None, None, None, None))
            continue
        if finished > now:
            jobs.append(
                (number, stage, "processing", stamp(created), stamp(started), None, None, None)
            )
            log.append((started, "INFO", f"{stage} started job {number}"))
            continue
        log.append((started, "INFO", f"{stage} started job {number}"))
        if rng.random() < 0.03:
            error = rng.choice(FAILURES)
            jobs.append(
                (
                    number,
                    stage,
                    "failed",
                    stamp(created),
                    stamp(started),
                    stamp(finished),
                    cost,
                    error,
                )
            )
            log.append((finished, "ERROR", f"{stage} job {number} failed: {error}"))
        else:
            jobs.append(
                (
                    number,
                    stage,
                    "completed",
                    stamp(created),
                    stamp(started),
                    stamp(finished),
                    cost,
                    None,
                )
            )
            log.append(
                (
                    finished,
                    "INFO",
                    f"{stage} job {number} completed in {(finished - started).seconds}s",
                )
            )
    for offset, number in zip((95, 180, 340), (count + 1, count + 2, count + 3), strict=True):
        started = now - timedelta(minutes=offset)
        jobs.append(
            (
                number,
                "transform",
                "processing",
                stamp(started - timedelta(minutes=2)),
                stamp(started),
                None,
                None,
                None,
            )
        )
        log.append((started, "INFO", f"transform started job {number}"))
    for minute in range(0, HOURS_OF_HISTORY * 60, 10):
        log.append((start + timedelta(minutes=minute), "INFO", "scheduler heartbeat"))
    burst_start = now - timedelta(hours=5)
    for second in range(0, 45 * 60, 60):
        log.append(
            (
                burst_start + timedelta(seconds=second),
                "ERROR",
                "catalogue API rate limited (HTTP 429), backing off",
            )
        )
    for minute in range(0, 45, 5):
        log.append(
            (
                burst_start + timedelta(minutes=minute, seconds=30),
                "WARNING",
                "retry budget below 20%",
            )
        )
    log.sort()
    return DemoStory(jobs, log)


def present() -> bool:
    """Whether the demo exists and is recent enough for its story to still hold
    (`opslib demo --if-stale` leaves it alone then)."""
    if not database_path().exists() or not log_path().exists():
        return False
    try:
        created = created_at(database_path())
    except sqlite3.Error:
        return False
    return created is not None and utc_now() - datetime.fromisoformat(created) < STALE_AFTER


def create(seed: int = 7) -> Path:
    """(Re)create the demo database and log; returns the demo folder."""
    now = utc_now()
    seeded = story(now, seed)

    def write_database(path: Path) -> None:
        with sqlite3.connect(path) as connection:
            connection.executescript(SCHEMA)
            connection.executemany("INSERT INTO jobs VALUES (?, ?, ?, ?, ?, ?, ?, ?)", seeded.jobs)
            connection.execute("INSERT INTO demo_meta VALUES ('created_at', ?)", (now.isoformat(),))
        connection.close()

    paths.replace_atomically(database_path(), write_database)
    paths.write_atomically(log_path(), "".join(log_line(*entry) for entry in seeded.log))
    return demo_dir()
