"""One tool for every pipeline: the same queue checks, timeouts and reset against a real
PostgreSQL server that the fixture starts, seeded with the demo's story."""

from __future__ import annotations

import socket
import threading
import time

import pytest
from postgres_server import PostgresServer
from support import PG_PROFILE, Workspace

from opslib.probes import ProbeError, TargetUnreachable
from opslib.probes.database import reachable
from opslib.probes.queue import stuck_jobs
from opslib.profiles import load_profile
from opslib.status import Status


def test_morning_check_on_postgres_finds_the_stuck_jobs(
    workspace: Workspace, pipeline: str
) -> None:
    result = workspace.opslib("run", "morning-check", "--profile", pipeline)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "WARNING  stuck_jobs: 3 job(s)" in result.stdout
    (page,) = [p for p in workspace.archive_files() if p.suffix == ".html"]
    text = page.read_text()
    not_applicable = next(line for line in text.splitlines() if "Not applicable to profile" in line)
    assert "database_integrity (no sqlite)" in not_applicable and "log_error_rate" in not_applicable


def all_rows(server: PostgresServer) -> dict[int, tuple]:
    engine = server.engine("pipeline")
    with engine.connect() as connection:
        rows = {row[0]: tuple(row[1:]) for row in connection.exec_driver_sql("SELECT * FROM jobs")}
    engine.dispose()
    return rows


def test_reset_on_postgres_changes_exactly_the_stuck_rows(
    server: PostgresServer, workspace: Workspace, pipeline: str
) -> None:
    profile = load_profile(pipeline)
    stuck_before = set(stuck_jobs(profile).table["id"])
    before = all_rows(server)
    dry = workspace.opslib("run", "stuck-pipeline", "--profile", pipeline)
    assert "dry run" in dry.stdout and all_rows(server) == before, "nothing changes without apply"
    result = workspace.opslib("run", "stuck-pipeline", "--profile", pipeline, "-p", "apply=true")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "applied plan" in result.stdout
    after = all_rows(server)
    changed = {job for job in before if before[job] != after[job]}
    assert changed == stuck_before and len(changed) == 3
    assert all(after[job][1] == "queued" and after[job][3] is None for job in changed)


def test_probes_cannot_write(pipeline: str) -> None:
    from opslib.probes import db

    with (
        pytest.raises(ProbeError, match="read-only"),
        db.connect(load_profile(pipeline)) as connection,
    ):
        connection.exec_driver_sql("DELETE FROM jobs")


def test_statement_past_its_timeout_is_cancelled_as_unknown(
    server: PostgresServer, pipeline: str
) -> None:
    engine = server.engine("pipeline")
    with engine.begin() as connection:
        connection.exec_driver_sql(
            "CREATE VIEW slow_jobs AS SELECT j.* FROM jobs j, pg_sleep(5) AS nap"
        )
    engine.dispose()
    slow = pipeline.replace(".yaml", "-slow.yaml")
    with open(pipeline) as original, open(slow, "w") as copy:
        copy.write(original.read().replace("table: jobs", "table: slow_jobs"))
    started = time.monotonic()
    with pytest.raises(ProbeError, match="did not finish within its timeout") as failure:
        stuck_jobs(load_profile(slow))
    assert failure.value.status is Status.UNKNOWN
    assert time.monotonic() - started < 3


def test_server_that_accepts_but_never_answers_is_critical_within_connect_timeout(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    held: list[socket.socket] = []
    accepting = threading.Thread(target=lambda: held.append(silent.accept()[0]), daemon=True)
    accepting.start()
    monkeypatch.setenv(
        "OPSLIB_TEST_PG_URL", f"postgresql://ops:pw@127.0.0.1:{silent.getsockname()[1]}/pipeline"
    )
    profile = tmp_path / "silent.yaml"
    profile.write_text(PG_PROFILE)
    started = time.monotonic()
    try:
        with pytest.raises(TargetUnreachable):
            reachable(load_profile(str(profile)))
    finally:
        silent.close()
        for connection in held:
            connection.close()
    assert time.monotonic() - started < 2 + 1


def test_stopped_server_is_critical_within_connect_timeout(
    server: PostgresServer, pipeline: str
) -> None:
    server.stop()
    started = time.monotonic()
    try:
        with pytest.raises(TargetUnreachable) as failure:
            reachable(load_profile(pipeline))
        elapsed = time.monotonic() - started
    finally:
        server.start()
    assert failure.value.status is Status.CRITICAL
    assert elapsed < 2 + 1, "connect_timeout (2 s) + 1 s"
