"""The fault matrix's fixtures and its timing summary; the helpers and the scenarios'
shared rules are in faults_support.py."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from faults_support import DB_PASSWORD, PG_TABLES, QUERY_PASSWORD, TIMINGS, GuardedDatabase
from postgres_server import PostgresServer
from redis_server import RedisServer

from opslib.clock import utc_now
from opslib.demo import builtin as demo


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    """With --durations, also each scenario's own measured time against its bound."""
    if not TIMINGS or config.getoption("durations", None) is None:
        return
    terminalreporter.section("fault matrix: measured time / bound (s)")
    for name, (elapsed_s, bound_s) in sorted(TIMINGS.items(), key=lambda item: -item[1][0]):
        over = "  OVER" if elapsed_s > bound_s else ""
        terminalreporter.write_line(f"{elapsed_s:6.2f} / {bound_s:5.1f}  {name}{over}")


@pytest.fixture(scope="session")
def guarded_server() -> Iterator[PostgresServer]:
    """A PostgreSQL of its own: passwords checked for every role but the superuser, and
    10 connection slots (3 kept for superusers), so 7 sessions exhaust it."""
    server = PostgresServer.create(max_connections="10", superuser_reserved_connections="3")
    (server.base / "data" / "pg_hba.conf").write_text(
        "local all postgres trust\nlocal all all scram-sha-256\n"
    )
    server.pg_ctl("reload")
    with psycopg.connect(server.url(), autocommit=True) as admin:
        admin.execute(f"CREATE ROLE pipeline LOGIN PASSWORD '{DB_PASSWORD}'")
        admin.execute(f"CREATE ROLE auditor LOGIN PASSWORD '{QUERY_PASSWORD}'")
    yield server
    server.destroy()


@pytest.fixture
def guarded_db(guarded_server: PostgresServer) -> GuardedDatabase:
    """A fresh `pipeline` database holding the demo's jobs and a halt flag."""
    guarded_server.fresh_database("pipeline")
    database = GuardedDatabase(guarded_server)
    with database.connect() as connection:
        connection.execute(PG_TABLES)
        with connection.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO jobs VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                demo.story(utc_now()).jobs,
            )
    return database


@pytest.fixture
def hanging_listener() -> Iterator[int]:
    """A port that accepts connections and never says a word: a server hung after
    accept, or a firewall that swallows the replies. Yields the port."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            with contextlib.suppress(OSError):
                accepted.append(listener.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join(timeout=5)
    for connection in accepted:
        connection.close()
    listener.close()


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A Redis of this test's own, to stop, freeze or pause without touching the
    session's."""
    server = RedisServer.start()
    yield server
    with contextlib.suppress(ProcessLookupError):
        os.kill(server.process.pid, signal.SIGCONT)  # a frozen server must still stop
    server.stop()


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Callable[..., Path]]:
    """Mount a small tmpfs (`size` like '64k'), optionally read-only; unmounted after.
    Skipped, with the reason, where the test cannot mount (not root, no privilege)."""
    mounted: list[Path] = []

    def mount(name: str, size: str, *, readonly: bool = False) -> Path:
        point = tmp_path / name
        point.mkdir()
        options = f"size={size},mode=0700" + (",ro" if readonly else "")
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(point)],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip() or 'mount failed'}")
        mounted.append(point)
        return point

    yield mount
    for point in reversed(mounted):
        subprocess.run(["umount", "-l", str(point)], capture_output=True)
