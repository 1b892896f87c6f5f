"""The fault matrix's own fixtures, and the one verdict every scenario ends with.

A scenario provokes one fault with real components (a PostgreSQL that refuses or hangs,
a stopped Redis, a locked or damaged SQLite file, a full or read-only archive, a hostile
profile) and then asks the same questions of what is left: the status, the time it took
against its bound, the archive (complete files only, no canary, owner-only), the output.

Every secret the scenarios plant starts with `cnry`, so one byte search of the archive
and of the output finds any of them, whole or cut.

The fixtures (servers, a hanging port, tmpfs mounts) are in this folder's conftest.py.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import os
import socket
import sqlite3
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from postgres_server import PostgresServer

from opslib.status import Status

CANARY = b"cnry"
# letters only: a log pattern folds numbers and hex tokens into placeholders, which
# would hide a canary from the report before any masking is put to the test
DB_PASSWORD = "cnryDbPassQkzvwx"
QUERY_PASSWORD = "cnryQueryPwJhtrmb"
WRONG_PASSWORD = "cnryWrongPwXlqpcs"
API_KEY = "cnryApiKeyVbnmzt"
WEBHOOK_TOKEN = "cnryHookTokenRwsyd"
SMTP_PASSWORD = "cnrySmtpPwGhfkla"

# what a run's own code adds to its --timeout or a probe's timeout: 10 %
SLACK = 1.10
# scheduling noise on a loaded two-core machine, on top of a bound of a second or two
JITTER_S = 0.3


def bound(timeout_s: float) -> float:
    """The time a command or probe with this timeout may take: the timeout + 10 %, and
    the scheduling jitter."""
    return timeout_s * SLACK + JITTER_S


@dataclass(frozen=True)
class Scenario:
    """One row of the matrix: the fault, how it is set up, what is run while it holds,
    what must come of it and how long it may take.

    `command` is an `opslib` command line for a scenario run as cron would, or the checks
    a probe scenario evaluates; `expected` the statuses accepted for the command's exit
    code, or for every one of those checks."""

    name: str
    fault: str
    setup: Callable[..., Any]
    command: tuple[str, ...]
    expected: frozenset[Status]
    bound_s: float

    def __str__(self) -> str:
        return self.name


def statuses(*accepted: Status) -> frozenset[Status]:
    """The statuses a scenario accepts (none: a SIGKILLed command has no status)."""
    return frozenset(accepted)


NOT_OK = statuses(Status.UNKNOWN, Status.CRITICAL)


TIMINGS: dict[str, tuple[float, float]] = {}


def assert_within(name: str, elapsed_s: float, bound_s: float) -> None:
    """Record the scenario's wall time and hold it to its bound."""
    TIMINGS[name] = (elapsed_s, bound_s)
    assert elapsed_s <= bound_s, f"{name} took {elapsed_s:.1f} s, bound {bound_s:.1f} s"


def _readable_bytes(path: Path) -> Iterator[bytes]:
    """A file's bytes, and for a compressed one what it holds."""
    data = path.read_bytes()
    yield data
    if path.name.endswith((".tar.gz", ".tgz")):
        with tarfile.open(path) as archive:
            for member in archive.getmembers():
                extracted = archive.extractfile(member) if member.isfile() else None
                if extracted is not None:
                    yield extracted.read()
    elif path.suffix == ".gz":
        with contextlib.suppress(OSError, EOFError):
            yield gzip.decompress(data)


def leaks(text: str | bytes) -> bool:
    """Whether a canary, any of them, shows in `text`."""
    data = text.encode() if isinstance(text, str) else text
    return CANARY in data.lower()


def assert_no_canary(*outputs: str | bytes) -> None:
    for output in outputs:
        assert not leaks(output), f"a canary secret in the output: {_around_canary(output)}"


def _around_canary(text: str | bytes) -> str:
    data = text.encode() if isinstance(text, str) else text
    at = data.lower().find(CANARY)
    return repr(data[max(0, at - 80) : at + 60])


def assert_clean_archive(reports: Path, *outputs: str | bytes) -> None:
    """Whatever the fault, the archive holds only whole files (no `.part`, nothing left
    in `.tmp`, every page ending in `</html>`, every notebook whole JSON), no secret in
    any byte of any file (compressed ones opened), and nothing others may read; the
    output (stdout, stderr, messages sent) holds no secret either."""
    assert_no_canary(*outputs)
    if not reports.exists():
        return
    problems = []
    for path in sorted(reports.rglob("*")):
        shown = path.relative_to(reports)
        mode = path.lstat().st_mode
        if mode & 0o004:
            problems.append(f"{shown} is readable by others ({oct(mode & 0o777)})")
        if path.is_dir():
            if path.name == ".tmp" and any(path.iterdir()):
                problems.append(
                    f"{shown} holds leftovers: {sorted(p.name for p in path.iterdir())}"
                )
            continue
        if path.name.endswith(".part") or (path.name.startswith(".") and path.suffix == ".tmp"):
            problems.append(f"{shown} is a temporary file left behind")
        if path.suffix == ".html" and not path.read_bytes().rstrip().endswith(b"</html>"):
            problems.append(f"{shown} is not a whole HTML page")
        if path.suffix == ".ipynb":
            try:
                json.loads(path.read_bytes())
            except ValueError:
                problems.append(f"{shown} is not a whole notebook")
        for data in _readable_bytes(path):
            if leaks(data):
                problems.append(f"{shown} holds a canary: {_around_canary(data)}")
                break
    assert not problems, "\n".join(problems)


def sqlite_digest(database: Path) -> str:
    """A digest of every row of every table, to show nothing changed."""
    with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as connection:
        digest = hashlib.sha256()
        tables = connection.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
        ).fetchall()
        for (table,) in tables:
            for row in connection.execute(f'SELECT * FROM "{table}" ORDER BY 1'):
                digest.update(repr(row).encode())
    return digest.hexdigest()


@dataclass
class Ran:
    """A finished command: its exit code, its output and how long it took."""

    returncode: int
    stdout: str
    stderr: str
    elapsed_s: float

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def json(self) -> dict[str, Any]:
        """The `--format json` outcome; its absence fails the scenario, saying why."""
        try:
            return json.loads(self.stdout)
        except ValueError:
            raise AssertionError(
                f"no JSON outcome printed; stderr: {self.stderr.strip()}"
            ) from None


def start_opslib(
    env: dict[str, str], cwd: Path, *args: str, memory_limit_bytes: int | None = None
) -> subprocess.Popen[str]:
    """`python -m opslib ARGS` in the background, as cron starts it; with a memory limit
    for input that could balloon."""

    def limit_memory() -> None:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (memory_limit_bytes, memory_limit_bytes))

    return subprocess.Popen(
        [sys.executable, "-m", "opslib", *args],
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=limit_memory if memory_limit_bytes else None,
    )


def finish(process: subprocess.Popen[str], started: float, kill_after_s: float = 60) -> Ran:
    """Wait for a command started at `started`; kill it (and say so in its stderr) if it
    outlives `kill_after_s`, so a hang fails the scenario instead of the suite."""
    try:
        stdout, stderr = process.communicate(
            timeout=max(0.1, started + kill_after_s - time.monotonic())
        )
    except subprocess.TimeoutExpired:
        process.kill()
        stdout, stderr = process.communicate()
        stderr += f"\n[killed by the test after {kill_after_s:g} s]"
    return Ran(process.returncode, stdout, stderr, time.monotonic() - started)


def run_opslib(
    env: dict[str, str],
    cwd: Path,
    *args: str,
    kill_after_s: float = 60,
    memory_limit_bytes: int | None = None,
) -> Ran:
    """`python -m opslib ARGS`, waited for (see `start_opslib` and `finish`)."""
    started = time.monotonic()
    process = start_opslib(env, cwd, *args, memory_limit_bytes=memory_limit_bytes)
    return finish(process, started, kill_after_s)


def wait_for_file(marker: Path, process: subprocess.Popen[str], timeout_s: float = 30) -> None:
    """Return once `marker` exists: a runbook cell touches it when the run is where the
    test wants it (inside a long cell, holding its lock)."""
    deadline = time.monotonic() + timeout_s
    while not marker.exists():
        if process.poll() is not None:
            raise AssertionError(f"the run ended before {marker.name}: {process.communicate()}")
        assert time.monotonic() < deadline, f"the run never reached {marker.name}"
        time.sleep(0.05)


def touch_then_sleep(marker: Path | str, seconds: float) -> str:
    """A runbook cell that says where it is, then works for `seconds`."""
    return f"import pathlib, time\npathlib.Path({str(marker)!r}).touch()\ntime.sleep({seconds})"


def processes_with_environment(entry: str) -> list[int]:
    """Pids of live processes whose environment holds `entry` (`NAME=value`): how a run's
    kernel is told apart from every other process on the machine."""
    wanted = entry.encode()
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if wanted in (proc / "environ").read_bytes().split(b"\0"):
                found.append(int(proc.name))
        except OSError:
            continue
    return found


PG_TABLES = """
CREATE TABLE jobs (
    id integer PRIMARY KEY, stage text NOT NULL, status text NOT NULL,
    created_at timestamp NOT NULL, started_at timestamp, finished_at timestamp,
    cost_usd numeric, error text
);
CREATE TABLE pipeline_control (key text PRIMARY KEY, value text, updated_at timestamp);
INSERT INTO pipeline_control VALUES ('halt', 'off', now() AT TIME ZONE 'UTC');
GRANT ALL ON jobs, pipeline_control TO pipeline, auditor;
"""


@dataclass
class GuardedDatabase:
    """The `pipeline` database on a server that checks passwords: role `pipeline` logs
    in with DB_PASSWORD, role `auditor` with QUERY_PASSWORD."""

    server: PostgresServer

    def dsn(
        self, password: str = DB_PASSWORD, *, user: str = "pipeline", database: str = "pipeline"
    ) -> str:
        where = f"host={self.server.socket_dir}&port={self.server.port}"
        return f"postgresql://{user}:{password}@/{database}?{where}"

    def query_dsn(self, password: str = QUERY_PASSWORD, *, user: str = "auditor") -> str:
        """The password as a query parameter, as some drivers and poolers write it."""
        where = f"host={self.server.socket_dir}&port={self.server.port}"
        return f"postgresql:///pipeline?{where}&user={user}&password={password}"

    def connect(self, user: str = "postgres") -> psycopg.Connection:
        password = {"pipeline": DB_PASSWORD, "auditor": QUERY_PASSWORD}.get(user, "")
        return psycopg.connect(
            self.dsn(password, user=user) if password else self.server.url("pipeline"),
            autocommit=True,
        )

    def digest(self) -> str:
        with self.connect() as connection:
            rows = connection.execute(
                "SELECT md5(string_agg(t::text, ',' ORDER BY t::text)) FROM jobs t"
            ).fetchone()[0]
            control = connection.execute(
                "SELECT string_agg(key || '=' || value, ',' ORDER BY key) FROM pipeline_control"
            ).fetchone()[0]
        return f"{rows} {control}"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def fill(folder: Path, leave_bytes: int) -> None:
    """Fill the filesystem holding `folder` until at most `leave_bytes` are free."""
    stats = os.statvfs(folder)
    free = stats.f_bavail * stats.f_frsize
    with contextlib.suppress(OSError), open(folder / "ballast", "wb") as ballast:
        ballast.write(b"\0" * max(0, free - leave_bytes))


def write_profile(folder: Path, name: str, body: str) -> Path:
    """`folder/NAME.yaml`: the profile `body` under that name."""
    path = folder / f"{name}.yaml"
    path.write_text(f"name: {name}\n{body}")
    return path


def runbook_cells(name: str, *steps: str) -> tuple[str, ...]:
    """The cells of a test runbook: open, the steps, finish."""
    return (
        f'from opslib.runbook import Runbook\nrb = Runbook.open("{name}", profile)',
        *steps,
        "rb.finish()",
    )


def assert_probe_scenario(scenario: Scenario, findings: list[Any], elapsed_s: float) -> None:
    """A probe-level scenario's verdict: a result for each check it ran, each with an
    expected status, no canary in any summary, within its bound."""
    results = [result for finding in findings for result in finding.results]
    assert {r.name.partition("[")[0] for r in results} == set(scenario.command), results
    for result in results:
        assert result.status in scenario.expected, f"{result.name}: {result.summary}"
    assert_no_canary(*(result.summary for result in results))
    assert_within(scenario.name, elapsed_s, scenario.bound_s)
