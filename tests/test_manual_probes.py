"""The smaller probes the manuals use, on real components: who listens on a port (a real
socket in a child process), SQLite schema drift against a recorded baseline (a real
file), the stage processes' resident memory (a real process), Redis's memory limit and
eviction policy (the Redis fixture, CONFIG SET and an ACL user without CONFIG), and the
daily ceiling and per-service cost (the PostgreSQL fixture, timestamptz and epochs)."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path

import humanfriendly
import psutil
import pytest
from postgres_server import PostgresServer
from redis_server import RedisServer
from support import PG_PROFILE, Workspace

from opslib.actions import execute
from opslib.actions.schema import RecordSchemaBaseline
from opslib.archive.ledger import Ledger
from opslib.clock import utc_now
from opslib.context import RunContext
from opslib.probes.listeners import listeners
from opslib.profiles import load_profile
from opslib.runbook import Runbook
from opslib.status import Status

SCHEMA = [
    "CREATE TABLE spots (spot_id INTEGER PRIMARY KEY, broadcast_month TEXT NOT NULL, "
    "revenue REAL, language_block_id INTEGER, note TEXT)",
    "CREATE INDEX spots_month ON spots (broadcast_month)",
    "CREATE TABLE language_blocks (block_id INTEGER PRIMARY KEY, name TEXT)",
]


def _profile(tmp_path: Path, text: str) -> Path:
    path = tmp_path / f"profile-{uuid.uuid4().hex[:6]}.yaml"
    path.write_text(text)
    return path


def _evaluate(profile: Path | str, check: str, **args: object):
    return Runbook("t", load_profile(str(profile))).evaluate(check, **args)


@contextmanager
def _child(code: str, *marker: str) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """A python child that prints one line once ready, then sleeps; ended afterwards."""
    child = subprocess.Popen(
        [sys.executable, "-c", code, *marker], stdout=subprocess.PIPE, text=True
    )
    try:
        yield child, child.stdout.readline().strip()
    finally:
        child.kill()
        child.wait(timeout=10)


LISTEN = (
    "import socket, time\n"
    "s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen()\n"
    "print(s.getsockname()[1], flush=True); time.sleep(60)"
)


def test_listener_is_named_by_pid_user_and_command_and_judged_by_the_profile(
    tmp_path: Path,
) -> None:
    with _child(LISTEN) as (child, port):
        free = _free_port()
        profile = _profile(
            tmp_path,
            f"name: ports\nprocesses:\n  listeners:\n    web: {port}\n    idle: {free}\n"
            'checks:\n  tcp_listener[web]: {warning: "0"}\n  tcp_listener[idle]: {critical: "1:"}\n',
        )
        finding = _evaluate(profile, "tcp_listener")
    web, idle = finding.results
    assert (web.name, web.status, web.value) == ("tcp_listener[web]", Status.WARNING, 1)
    assert web.summary.startswith(f"web: port {port} is listened on by pid {child.pid} (root) ")
    (row,) = finding.tables[0].to_dict("records")
    assert (row["port"], row["addresses"], row["pid"], row["user"]) == (
        int(port),
        "127.0.0.1",
        child.pid,
        "root",
    )
    assert row["command"].startswith(f"{sys.executable} -c import socket")
    assert (idle.status, idle.value, idle.summary) == (
        Status.CRITICAL,
        0,
        f"idle: nothing listens on port {free}",
    )


def test_a_listener_this_user_cannot_see_is_unknown_never_ok(tmp_path: Path) -> None:
    """Run as `nobody` (a forked child of this root test), the root-owned socket is
    listed by the kernel but its owner's descriptors cannot be read."""
    if os.geteuid() != 0:
        pytest.skip("needs root to drop to another user")
    with _child(LISTEN) as (_child_process, port):
        profile = load_profile(
            str(_profile(tmp_path, f"name: ports\nprocesses:\n  listeners:\n    web: {port}\n"))
        )
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: drop to nobody, measure, report, exit
            try:
                os.close(read)
                os.setgid(65534)
                os.setuid(65534)
                (metric,) = listeners(profile)
                report = [metric.value, metric.summary, metric.verdict.name]
                os.write(write, json.dumps(report).encode())
            finally:
                os._exit(0)
        os.close(write)
        with os.fdopen(read) as stream:
            value, summary, verdict = json.loads(stream.read())
        os.waitpid(pid, 0)
    assert (value, verdict) == (None, "UNKNOWN")
    assert summary == (
        f"web: port {port} is listened on (127.0.0.1) but its owner is not visible to this "
        "user (reading another user's sockets needs root)"
    )


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def spots_db(tmp_path: Path) -> Path:
    path = tmp_path / "production.db"
    with sqlite3.connect(path) as connection:
        for statement in SCHEMA:
            connection.execute(statement)
    connection.close()
    return path


def _context() -> RunContext:
    return RunContext.current("data-integrity", "schema")


def test_schema_drift_against_a_recorded_baseline(
    tmp_path: Path, spots_db: Path, workspace: Workspace
) -> None:
    profile_path = _profile(
        tmp_path, f"name: schema\ntargets:\n  database:\n    url: sqlite:///{spots_db}\n"
    )
    baseline = spots_db.with_name("production.db.schema.json")
    missing = _evaluate(profile_path, "schema_drift").results[0]
    assert missing.status is Status.UNKNOWN
    assert missing.summary == (
        f"no schema baseline recorded at {baseline} (targets.database.schema_baseline); "
        "record one with the data-integrity runbook (apply)"
    )

    profile = load_profile(str(profile_path))
    dry = execute(RecordSchemaBaseline(profile), _context(), Ledger)
    assert dry.mode == "dry-run" and not baseline.exists()
    assert dry.plan.summary == (
        "record the schema (2 table(s), 1 index(s), 0 view(s), 0 trigger(s)) as the first baseline"
    )
    applied = execute(RecordSchemaBaseline(profile), _context(), Ledger, apply=True)
    assert applied.mode == "applied", applied.message
    assert applied.applied.remeasured and applied.applied.after_count == 0
    assert applied.applied.backup == {"previous_baseline": None}
    assert baseline.stat().st_mode & 0o777 == 0o600
    recorded = json.loads(baseline.read_text())["schema"]
    assert recorded["table"]["spots"]["columns"]["broadcast_month"] == "TEXT NOT NULL"
    assert _evaluate(profile_path, "schema_drift").results[0].status is Status.OK

    with sqlite3.connect(spots_db) as connection:
        connection.execute("CREATE INDEX spots_revenue ON spots (revenue)")
        connection.execute("ALTER TABLE spots DROP COLUMN note")
    connection.close()
    drifted = _evaluate(profile_path, "schema_drift")
    (result,) = drifted.results
    assert (result.status, result.value) == (Status.WARNING, 2)
    assert drifted.tables[0].to_dict("records") == [
        {"object": "column spots.note", "change": "removed", "detail": "TEXT"},
        {
            "object": "index spots_revenue",
            "change": "added",
            "detail": "CREATE INDEX spots_revenue ON spots (revenue)",
        },
    ]
    assert result.summary.endswith("; first: column spots.note removed: TEXT")

    plan = RecordSchemaBaseline(profile).plan()
    assert plan.changes[0]["accepted_differences"] == [
        "column spots.note removed: TEXT",
        "index spots_revenue added: CREATE INDEX spots_revenue ON spots (revenue)",
    ]
    with sqlite3.connect(spots_db) as connection:  # a change after the review
        connection.execute("DROP INDEX spots_month")
    connection.close()
    late = RecordSchemaBaseline(profile).apply(plan)
    assert (late.changed, late.skipped) == (0, [str(baseline)])
    assert json.loads(baseline.read_text())["schema"] == recorded  # not recorded unseen


@pytest.fixture
def stage_process() -> Iterator[tuple[int, str]]:
    marker = f"opslib-test-stage-{uuid.uuid4().hex[:8]}"
    code = "import time\nb = b'x' * (48 * 2**20)\nprint('ready', flush=True)\ntime.sleep(60)"
    with _child(code, marker) as (child, _ready):
        yield child.pid, marker


def test_stage_memory_is_each_stage_process_rss_by_pid(
    tmp_path: Path, spots_db: Path, stage_process: tuple[int, str]
) -> None:
    pid, marker = stage_process
    profile = _profile(
        tmp_path,
        f"name: stages\ntargets:\n  database:\n    url: sqlite:///{spots_db}\n"
        f"stages:\n  table: spots\n  steps:\n    language_blocks:\n      column: language_block_id\n"
        f"      process: {marker}\n  stuck_after: 1 h\n"
        "checks:\n  stage_memory[language_blocks]: {warning: 32 MB, critical: 10 GB}\n",
    )
    finding = _evaluate(profile, "stage_memory")
    rss = psutil.Process(pid).memory_info().rss
    (result,) = finding.results
    assert (result.name, result.status, result.value) == (
        "stage_memory[language_blocks]",
        Status.WARNING,
        rss,
    )
    assert rss > 48 * 2**20
    shown = humanfriendly.format_size(rss)
    assert result.summary == f"stage language_blocks pid {pid} uses {shown} resident"
    stuck = _evaluate(profile, "stuck_stages")
    (row,) = stuck.tables[0].to_dict("records")
    assert (row["stage"], row["pid"], row["rss"]) == ("language_blocks", pid, shown)


REDIS_PROFILE = """name: redis
targets:
  redis:
    url: ${OPSLIB_TEST_REDIS_URL}
    maxmemory: 8 GiB
    maxmemory_policy: allkeys-lru
"""


@pytest.fixture
def redis_settings(redis_server: RedisServer) -> Iterator[RedisServer]:
    """The shared test server, its memory settings put back afterwards."""
    client = redis_server.client()
    yield redis_server
    client.config_set("maxmemory", 0)
    client.config_set("maxmemory-policy", "noeviction")
    client.acl_deluser("opslib-noconfig")


def test_redis_without_maxmemory_or_with_another_policy_is_a_warning(
    tmp_path: Path, redis_settings: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPSLIB_TEST_REDIS_URL", redis_settings.url)
    profile = _profile(tmp_path, REDIS_PROFILE)
    client = redis_settings.client()
    client.config_set("maxmemory", 0)
    client.config_set("maxmemory-policy", "noeviction")
    bare = _evaluate(profile, "redis_maxmemory")
    (result,) = bare.results
    assert (result.status, result.value) == (Status.WARNING, 2)
    assert result.summary == (
        "no maxmemory set: Redis grows until the machine runs out of memory; "
        "eviction policy is noeviction, the profile expects allkeys-lru"
    )
    assert bare.tables[0]["read_with"].tolist() == ["CONFIG GET", "CONFIG GET"]

    client.config_set("maxmemory", "100mb")
    client.config_set("maxmemory-policy", "allkeys-lru")
    (smaller,) = _evaluate(profile, "redis_maxmemory").results
    assert (smaller.status, smaller.summary) == (
        Status.WARNING,
        "maxmemory is 100 MiB, the profile expects 8 GiB",
    )

    client.config_set("maxmemory", "8gb")
    (right,) = _evaluate(profile, "redis_maxmemory").results
    assert (right.status, right.value, right.summary) == (
        Status.OK,
        0,
        "maxmemory 8 GiB, eviction policy allkeys-lru",
    )


def test_redis_without_config_falls_back_to_info_then_unknown(
    tmp_path: Path, redis_settings: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = redis_settings.client()
    client.config_set("maxmemory", "8gb")
    client.config_set("maxmemory-policy", "volatile-lru")
    client.acl_setuser(
        "opslib-noconfig",
        enabled=True,
        passwords=["+pw"],
        keys=["*"],
        commands=["+@all", "-config"],
    )
    limited = redis_settings.url.replace("redis://", "redis://opslib-noconfig:pw@")
    monkeypatch.setenv("OPSLIB_TEST_REDIS_URL", limited)
    profile = _profile(tmp_path, REDIS_PROFILE)
    fallback = _evaluate(profile, "redis_maxmemory")
    (result,) = fallback.results
    assert (result.status, result.summary) == (
        Status.WARNING,
        "eviction policy is volatile-lru, the profile expects allkeys-lru",
    )
    assert fallback.tables[0]["read_with"][0] == (
        "INFO memory (this user has no permissions to run the 'config|get' command)"
    )

    client.acl_setuser("opslib-noconfig", enabled=True, commands=["-info"])
    (blind,) = _evaluate(profile, "redis_maxmemory").results
    assert (blind.status, blind.summary) == (
        Status.UNKNOWN,
        "maxmemory cannot be read: CONFIG GET refused (this user has no permissions to run "
        "the 'config|get' command) and INFO memory refused (this user has no permissions to "
        "run the 'info' command)",
    )


COSTS = """costs:
  table: pipeline_costs
  item: video_id
  category: category
  amount: amount_usd
  at: created_at
checks:
  daily_cost: {critical: "150"}
"""


def _costs_profile(
    workspace: Workspace, server: PostgresServer, stored_as: str, rows: list[tuple]
) -> Path:
    """pipeline_costs in the fixture's database, times stored as `stored_as`."""
    engine = server.engine("pipeline")
    at = "created_at timestamptz" if stored_as == "timestamptz" else "created_at bigint"
    with engine.begin() as connection:
        connection.exec_driver_sql(
            "CREATE TABLE pipeline_costs (id serial PRIMARY KEY, video_id bigint NOT NULL, "
            f"category text NOT NULL, amount_usd numeric(8, 2) NOT NULL, {at} NOT NULL)"
        )
        for video, category, amount, moment in rows:
            stamp = (
                moment.isoformat() + "+00:00"
                if stored_as == "timestamptz"
                else int((moment - _EPOCH).total_seconds())
            )
            connection.exec_driver_sql(
                "INSERT INTO pipeline_costs (video_id, category, amount_usd, created_at) "
                "VALUES (%s, %s, %s, %s)",
                (video, category, amount, stamp),
            )
    engine.dispose()
    path = workspace.root / "costs.yaml"
    path.write_text(PG_PROFILE + COSTS)
    return path


_EPOCH = datetime(1970, 1, 1)


@pytest.mark.parametrize("stored_as", ["timestamptz", "epoch_s"])
def test_daily_cost_is_spend_since_midnight_against_the_ceiling(
    workspace: Workspace, server: PostgresServer, pipeline: str, stored_as: str
) -> None:
    now = utc_now()
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    today = [midnight + (now - midnight) * share for share in (0.25, 0.5)]
    rows = [
        (1, "gpu", "100.00", today[0]),
        (2, "api", "50.75", today[1]),
        (3, "storage", "7.00", midnight - timedelta(hours=12)),
        (4, "gpu", "100.00", midnight - timedelta(days=2, hours=12)),
        (5, "gpu", "999.00", midnight - timedelta(days=10)),  # outside the seven days
    ]
    profile = _costs_profile(workspace, server, stored_as, rows)
    finding = _evaluate(profile, "daily_cost")
    (result,) = finding.results
    assert (result.status, result.value) == (Status.CRITICAL, 150.75)
    assert result.summary == (
        "$150.75 spent today (since 00:00 UTC, 2 entries); $17.83 a day over the 6 days before"
    )
    days = finding.tables[0]
    assert days["amount_usd"].tolist() == [0.0, 0.0, 0.0, 100.0, 0.0, 7.0, 150.75]
    assert days["entries"].tolist() == [0, 0, 0, 1, 0, 1, 2]
    assert days.index[-1] == midnight.date().isoformat()


@pytest.mark.parametrize("stored_as", ["timestamptz", "epoch_s"])
def test_average_cost_per_service_over_the_last_hour(
    workspace: Workspace, server: PostgresServer, pipeline: str, stored_as: str
) -> None:
    now = utc_now()
    rows = [
        (1, "gpu", "1.00", now - timedelta(minutes=10)),
        (2, "gpu", "2.00", now - timedelta(minutes=20)),
        (2, "api", "0.30", now - timedelta(minutes=30)),
        (3, "api", "9.00", now - timedelta(hours=3)),  # outside the hour
    ]
    profile = _costs_profile(workspace, server, stored_as, rows)
    finding = _evaluate(profile, "service_cost")
    gpu, api = finding.results
    assert (gpu.name, gpu.value, api.name, api.value) == (
        "service_cost[gpu]",
        1.5,
        "service_cost[api]",
        0.3,
    )
    assert (
        gpu.summary
        == "gpu: $1.5000 per entry on average over 2 entries in the last 1 h ($3.00 in all)"
    )
    table = finding.tables[0]
    assert table["entries"].tolist() == [2, 1] and table["total_usd"].tolist() == [3.0, 0.3]


def test_data_integrity_records_the_baseline_when_applied(
    tmp_path: Path, spots_db: Path, workspace: Workspace
) -> None:
    profile = _profile(
        tmp_path, f"name: schema\ntargets:\n  database:\n    url: sqlite:///{spots_db}\n"
    )
    run = workspace.opslib("run", "data-integrity", "--profile", str(profile), "-p", "apply=true")
    assert "action:record_schema_baseline: applied plan" in run.stdout, run.stdout + run.stderr
    assert spots_db.with_name("production.db.schema.json").stat().st_mode & 0o777 == 0o600
    assert "4 check(s), all OK" not in run.stdout  # the first run had no baseline to compare
    assert _evaluate(profile, "schema_drift").status is Status.OK


def test_a_damaged_baseline_is_unknown_and_can_be_recorded_again(
    tmp_path: Path, spots_db: Path, workspace: Workspace
) -> None:
    profile_path = _profile(
        tmp_path, f"name: schema\ntargets:\n  database:\n    url: sqlite:///{spots_db}\n"
    )
    baseline = spots_db.with_name("production.db.schema.json")
    baseline.write_text('{"schema": ')
    (damaged,) = _evaluate(profile_path, "schema_drift").results
    assert damaged.status is Status.UNKNOWN
    assert damaged.summary.startswith(
        f"the schema baseline {baseline} (targets.database.schema_baseline) cannot be read: "
    )
    profile = load_profile(str(profile_path))
    applied = execute(RecordSchemaBaseline(profile), _context(), Ledger, apply=True)
    assert applied.plan.summary == (
        "record the schema (2 table(s), 1 index(s), 0 view(s), 0 trigger(s)) in place of an "
        "unreadable baseline"
    )
    assert applied.applied.backup == {"previous_baseline": '{"schema": '}
    assert _evaluate(profile_path, "schema_drift").status is Status.OK
