"""Fixtures: every test gets its own data dir, archive and (when it needs one) project
tree, and runs the real `opslib` command in a subprocess, as cron would."""

from __future__ import annotations

import ast
import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from postgres_server import PostgresServer
from redis_server import RedisServer
from support import PG_JOBS, PG_PROFILE, VIDEO_PROFILE, RedisQueue, Workspace

from opslib.clock import utc_now
from opslib.demo import builtin as demo


@pytest.fixture(scope="session")
def demo_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo pipeline, created once; tests get copies they may damage."""
    data = tmp_path_factory.mktemp("demo-template")
    env = {**os.environ, "OPSLIB_DATA_DIR": str(data)}
    subprocess.run(
        [sys.executable, "-m", "opslib", "demo"], env=env, check=True, capture_output=True
    )
    return data


# Modules that start processes the shipped profiles look for across the whole machine
# (stage scripts, the catalog's monitor, the ideas pipeline) or run checks that look for
# them: in two pytest workers a test of one would find the other's processes, so their
# tests take turns, holding one lock file between the workers.
SYSTEM_WIDE_PROCESSES = {
    "test_sqlite_stages",
    "test_sqlite_locks",
    "test_sqlite_recovery",
    "test_faults_sqlite",
    "test_manual_spots",
    "test_catalog",
    "test_manual_catalog",
    "test_ideas",
    "test_manual_ideas",
}
TURNS = Path(tempfile.gettempdir()) / f"opslib-tests-{os.getuid()}.turns"


@pytest.fixture(autouse=True)
def one_at_a_time_across_workers(request: pytest.FixtureRequest) -> Iterator[None]:
    if request.node.path.stem not in SYSTEM_WIDE_PROCESSES:
        yield
        return
    with TURNS.open("a") as turns:
        fcntl.flock(turns, fcntl.LOCK_EX)
        yield


@pytest.fixture(autouse=True)
def archive_outside_the_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A test that applies a fix without a workspace still audits into a folder of its
    own, never into the project's reports/ (where a developer's real runs are)."""
    monkeypatch.setenv("OPSLIB_REPORTS_DIR", str(tmp_path / "reports"))


@pytest.fixture
def workspace(tmp_path: Path, demo_template: Path, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    data = tmp_path / "data"
    shutil.copytree(demo_template, data)
    env = {key: value for key, value in os.environ.items() if not key.startswith("OPSLIB_")}
    env.update(OPSLIB_DATA_DIR=str(data), OPSLIB_REPORTS_DIR=str(tmp_path / "reports"))
    for key in [k for k in os.environ if k.startswith("OPSLIB_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("OPSLIB_DATA_DIR", env["OPSLIB_DATA_DIR"])
    monkeypatch.setenv("OPSLIB_REPORTS_DIR", env["OPSLIB_REPORTS_DIR"])
    return Workspace(tmp_path, env)


@pytest.fixture(scope="session")
def server() -> Iterator[PostgresServer]:
    # pg_stat_statements loaded, as the ideas manual's server runs; a database without
    # the extension created still shows what happens where it is absent
    server = PostgresServer.create(shared_preload_libraries="pg_stat_statements")
    yield server
    server.destroy()


@pytest.fixture
def pipeline(server: PostgresServer, workspace: Workspace, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh `pipeline` database with the demo's jobs; returns the profile path."""
    server.fresh_database("pipeline")
    url = server.url("pipeline")
    engine = server.engine("pipeline")
    with engine.begin() as connection:
        connection.exec_driver_sql(PG_JOBS)
        connection.exec_driver_sql(
            "INSERT INTO jobs VALUES (%s, %s, %s, %s, %s, %s, %s, %s)", demo.story(utc_now()).jobs
        )
    engine.dispose()
    workspace.env["OPSLIB_TEST_PG_URL"] = url
    monkeypatch.setenv("OPSLIB_TEST_PG_URL", url)
    profile = workspace.root / "pg.yaml"
    profile.write_text(PG_PROFILE)
    return str(profile)


@pytest.fixture
def ideas(
    workspace: Workspace, server: PostgresServer, monkeypatch: pytest.MonkeyPatch
) -> dict[str, object]:
    """A fresh `ideas` database with pg_stat_statements, seeded by `opslib demo ideas`;
    returns what the demo planted (change it with `support.ideas_sql`)."""
    server.fresh_database("ideas")
    engine = server.engine("ideas")
    with engine.begin() as connection:
        connection.exec_driver_sql("CREATE EXTENSION pg_stat_statements")
    engine.dispose()
    workspace.env["IDEAS_DSN"] = server.url("ideas")
    monkeypatch.setenv("IDEAS_DSN", server.url("ideas"))
    seeded = workspace.opslib("demo", "ideas")
    assert seeded.returncode == 0, seeded.stdout + seeded.stderr
    return ast.literal_eval(re.search(r"planted: (\{.*\})", seeded.stdout).group(1))


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    try:
        server = RedisServer.start()
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)
    yield server
    server.stop()


@pytest.fixture
def redis_queue(
    redis_server: RedisServer,
    server: PostgresServer,
    pipeline: str,
    workspace: Workspace,
    monkeypatch: pytest.MonkeyPatch,
) -> RedisQueue:
    """Redis mirroring the pipeline table, with one lost job and two orphans planted."""
    engine = server.engine("pipeline")
    with engine.connect() as connection:
        by_status = {
            status: [
                str(job)
                for job in connection.exec_driver_sql(
                    f"SELECT id FROM jobs WHERE status = '{status}' ORDER BY id"
                ).scalars()
            ]
            for status in ("processing", "queued", "completed")
        }
    engine.dispose()
    lost, orphan_done, orphan_queued = (
        by_status["processing"][0],
        by_status["completed"][0],
        by_status["queued"][0],
    )
    client = redis_server.client()
    client.flushdb()  # the test server's own database, started for this session
    client.sadd(
        "queue:processing",
        *[job for job in by_status["processing"] if job != lost],
        orphan_done,
        orphan_queued,
    )
    client.rpush("queue:pending", *[job for job in by_status["queued"] if job != orphan_queued])
    client.zadd("queue:priority", {by_status["queued"][-1]: 10})
    workspace.env["OPSLIB_TEST_REDIS_URL"] = redis_server.url
    monkeypatch.setenv("OPSLIB_TEST_REDIS_URL", redis_server.url)
    profile = workspace.root / "video.yaml"
    profile.write_text(
        VIDEO_PROFILE.replace(
            "targets:\n",
            "targets:\n  redis:\n    url: ${OPSLIB_TEST_REDIS_URL}\n    socket_timeout: 1 s\n",
            1,
        )
    )
    return RedisQueue(str(profile), lost, orphan_done, orphan_queued)


@pytest.fixture
def video(
    workspace: Workspace, server: PostgresServer, redis_server: RedisServer
) -> dict[str, int]:
    server.fresh_database("video")
    redis_server.client().flushdb()
    workspace.env["VIDEO_DSN"] = server.url("video")
    workspace.env["VIDEO_REDIS_URL"] = redis_server.url
    seeded = workspace.opslib("demo", "video")
    assert seeded.returncode == 0, seeded.stdout + seeded.stderr
    return ast.literal_eval(re.search(r"planted: (\{.*\})", seeded.stdout).group(1))


@pytest.fixture(scope="session")
def spots_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The spots demo database and logs, created once; tests get copies."""
    data = tmp_path_factory.mktemp("spots-template")
    env = {**os.environ, "OPSLIB_DATA_DIR": str(data)}
    subprocess.run(
        [sys.executable, "-m", "opslib", "demo", "spots"], env=env, check=True, capture_output=True
    )
    return data / "spots"


@pytest.fixture
def spots(workspace: Workspace, spots_template: Path) -> Path:
    """This test's own copy of the spots database (profile `spots` finds it); returns its path."""
    shutil.copytree(spots_template, workspace.data / "spots")
    return workspace.data / "spots" / "production.db"


@pytest.fixture
def receiver() -> Iterator[list[dict]]:
    """A local HTTP server keeping the JSON body of every POST; element 0 holds its URL."""
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # the name http.server dispatches to
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    received.append({"url": f"http://127.0.0.1:{server.server_address[1]}/hook"})
    yield received
    server.shutdown()
