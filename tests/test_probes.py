"""Probes against real files and real processes: they answer within their timeouts and
turn every failure into a status with a reason."""

from __future__ import annotations

import gzip
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from support import Workspace

from opslib.demo import builtin as demo
from opslib.probes import ProbeError, TargetUnreachable
from opslib.probes.database import reachable
from opslib.probes.logs import error_rate
from opslib.probes.queue import stuck_jobs
from opslib.profiles import load_profile
from opslib.status import Status

LOCK_HOLDER = """
import sqlite3, sys, time
connection = sqlite3.connect(sys.argv[1], isolation_level=None)
connection.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
time.sleep(60)
"""


def profile_for(tmp_path: Path, body: str):  # type: ignore[no-untyped-def]
    path = tmp_path / "probe.yaml"
    path.write_text("name: probe\n" + body)
    return load_profile(str(path))


def test_database_locked_by_another_process_is_critical_within_the_busy_timeout(
    workspace: Workspace,
) -> None:
    database = workspace.data / "demo" / "pipeline.db"
    holder = subprocess.Popen(
        [sys.executable, "-c", LOCK_HOLDER, str(database)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        started = time.monotonic()
        with pytest.raises(TargetUnreachable, match="locked") as failure:
            reachable(load_profile("demo"))
        elapsed = time.monotonic() - started
    finally:
        holder.kill()
        holder.wait()
    assert failure.value.status is Status.CRITICAL
    assert 1.5 <= elapsed < 3.5, f"demo busy timeout is 2 s, took {elapsed:.1f} s"


def test_a_statement_past_its_deadline_is_interrupted_as_unknown(tmp_path: Path) -> None:
    database = tmp_path / "slow.db"
    with sqlite3.connect(database) as connection:
        connection.execute(
            "CREATE TABLE jobs (id INTEGER PRIMARY KEY, stage, status, created_at, started_at, finished_at)"
        )
        connection.executemany(
            "INSERT INTO jobs (stage, status, started_at) VALUES ('x', 'processing', '2000-01-01 00:00:00.000000')",
            [()] * 2000,
        )
        connection.execute("CREATE VIEW slow_jobs AS SELECT a.* FROM jobs a, jobs b, jobs c")
    profile = profile_for(
        tmp_path,
        f"targets:\n  database:\n    url: sqlite:///{database}\n    statement_timeout: 0.2 s\n"
        "queue:\n  table: slow_jobs\n",
    )
    started = time.monotonic()
    with pytest.raises(ProbeError, match="did not finish within its timeout") as failure:
        stuck_jobs(profile)
    assert failure.value.status is Status.UNKNOWN
    assert time.monotonic() - started < 2


def test_logs_are_read_across_rotated_gzip_files_time_zones_and_the_window(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    logs = tmp_path / "logs"
    logs.mkdir()
    recent = (now - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S")
    old = (now - timedelta(days=3)).strftime("%Y-%m-%dT%H:%M:%S")
    shifted = (now - timedelta(hours=2)).astimezone(UTC).replace(tzinfo=None) + timedelta(
        hours=5, minutes=30
    )
    (logs / "app.log").write_text(
        f"{recent}Z INFO started\n{recent}Z ERROR failed\nTraceback (most recent call last):\n"
        f"{shifted.strftime('%Y-%m-%dT%H:%M:%S')}+05:30 WARN slow\n{old}Z ERROR ancient\n"
    )
    with gzip.open(logs / "app.log.1.gz", "wt") as rotated:
        rotated.write(f"{recent}Z ERROR from yesterday's file\n{recent}Z INFO ok\n")
    profile = profile_for(tmp_path, f"targets:\n  logs:\n    paths: ['{logs}/app.log*']\n")
    metric = error_rate(profile, window_hours=24)
    counts = metric.table["lines"].to_dict()
    assert counts == {"ERROR": 2, "INFO": 2, "WARNING": 1}
    assert metric.value == pytest.approx(40.0)


def test_no_log_file_is_a_reason_not_a_crash(tmp_path: Path) -> None:
    profile = profile_for(tmp_path, f"targets:\n  logs:\n    paths: ['{tmp_path}/none/*.log']\n")
    with pytest.raises(ProbeError, match="no log file matches"):
        error_rate(profile)


def test_demo_is_seeded_and_recreated_identically(workspace: Workspace) -> None:
    def summary() -> list[tuple]:
        with sqlite3.connect(demo.database_path()) as connection:
            return connection.execute(
                "SELECT stage, status, COUNT(*) FROM jobs GROUP BY 1, 2"
            ).fetchall()

    demo.create()
    first = summary()
    demo.create()
    assert summary() == first
    assert demo.present()
    assert not list(demo.demo_dir().rglob("*.tmp"))
