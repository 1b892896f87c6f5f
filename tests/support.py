"""What the tests share besides fixtures: the `Workspace` a test runs opslib in, the
PostgreSQL queue profile and the Redis queue's planted disagreements. A module of its own
(not conftest.py), so a test folder may have its own conftest without shadowing these."""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import nbformat
from postgres_server import PostgresServer

from opslib.actions import Outcome, execute
from opslib.context import RunContext

PROJECT = Path(__file__).resolve().parent.parent


@dataclass
class Workspace:
    """An isolated place to run opslib: data, reports and optionally a project tree."""

    root: Path
    env: dict[str, str]

    @property
    def reports(self) -> Path:
        return Path(self.env["OPSLIB_REPORTS_DIR"])

    @property
    def data(self) -> Path:
        return Path(self.env["OPSLIB_DATA_DIR"])

    @property
    def home(self) -> Path:
        return Path(self.env.get("OPSLIB_HOME", PROJECT))

    def opslib(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "opslib", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=self.root,
        )

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "opslib", *args],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=self.root,
        )

    def archive_files(self) -> set[Path]:
        """Report files (not the ledger, locks or temp dirs) currently in the archive."""
        if not self.reports.exists():
            return set()
        return {
            p
            for p in self.reports.rglob("*")
            if p.is_file() and p.suffix in {".html", ".ipynb"} and p.name != "index.html"
        }

    def add_runbook(self, name: str, *cells: str, parameters: str = 'profile = ""') -> Path:
        """A runbook notebook in this workspace's own project tree."""
        self._own_project()
        nb = nbformat.v4.new_notebook()
        first = nbformat.v4.new_code_cell(parameters)
        first.metadata["tags"] = ["parameters"]
        nb.cells = [nbformat.v4.new_markdown_cell(f"# {name}\n\nA test runbook."), first]
        nb.cells += [nbformat.v4.new_code_cell(source) for source in cells]
        nb.metadata.kernelspec = {"name": "opslib", "display_name": "opslib", "language": "python"}
        path = self.home / "notebooks" / "test" / f"{name}.ipynb"
        path.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, path)
        return path

    def _own_project(self) -> None:
        if "OPSLIB_HOME" in self.env:
            return
        home = self.root / "project"
        shutil.copytree(PROJECT / "notebooks", home / "notebooks")
        shutil.copytree(PROJECT / "parameters", home / "parameters")
        self.env["OPSLIB_HOME"] = str(home)


def ideas_sql(server: PostgresServer, *statements: str) -> None:
    """Run statements in the `ideas` database (the `ideas` fixture's) in one transaction."""
    engine = server.engine("ideas")
    with engine.begin() as connection:
        for statement in statements:
            connection.exec_driver_sql(statement)
    engine.dispose()


def spend_exactly(server: PostgresServer, share: float) -> None:
    """Replace the ideas period's spend with `share` of every category's allocation."""
    ideas_sql(
        server,
        "DELETE FROM spend",
        f"""INSERT INTO spend (idea_id, category, amount_usd, created_at)
            SELECT 'idea-0001', category, round(allocated_usd * {share}, 2),
                   now() AT TIME ZONE 'UTC' - interval '1 hour'
            FROM budgets""",
    )


PG_JOBS = """
CREATE TABLE jobs (
    id integer PRIMARY KEY, stage text NOT NULL, status text NOT NULL,
    created_at timestamp NOT NULL, started_at timestamp, finished_at timestamp,
    cost_usd numeric, error text
)"""
PG_PROFILE = """name: pg
targets:
  database:
    url: ${OPSLIB_TEST_PG_URL}
    connect_timeout: 2 s
    statement_timeout: 1 s
queue:
  table: jobs
  stuck_after: 30 min
"""


VIDEO_PROFILE = (
    PG_PROFILE
    + """  redis_keys:
    pending: queue:pending
    priority: queue:priority
    processing: queue:processing
"""
)


@dataclass
class RedisQueue:
    """The planted disagreements between Redis and the table."""

    profile: str
    lost: str  # processing in the table, absent from Redis
    orphan_done: str  # in the processing set, completed in the table
    orphan_queued: str  # in the processing set, queued in the table


class MemoryAudit:
    """The audit log the gate writes to, kept in memory: for tests of what an action
    does, where the ledger itself is not under test."""

    def __init__(self) -> None:
        self.closed: list[tuple[str, dict[str, Any]]] = []

    def open_audit(self, entry: dict[str, Any]) -> int:
        return 1

    def close_audit(self, audit_id: int, outcome: str, **facts: Any) -> None:
        self.closed.append((outcome, facts))


def act(action: Any, **how: Any) -> Outcome:
    """Plan `action` through the gate and apply it as `how` says (apply=, approve=)."""
    return execute(action, RunContext.current("test", action.profile.name), MemoryAudit, **how)


@contextmanager
def answering(answer: Callable[[BaseHTTPRequestHandler], tuple[int, bytes]]) -> Iterator[str]:
    """A local HTTP server that answers every GET with `answer(request)`, a status and a
    body (JSON when it parses as JSON); yields its base URL, `http://127.0.0.1:PORT`."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # the name http.server dispatches to
            status, body = answer(self)
            self.send_response(status)
            if body[:1] in (b"{", b"["):
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
