"""SQLite lock holders found with real processes holding real locks, and released one by one."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml
from sqlite_holders import holding
from support import PROJECT, Workspace

from opslib.actions import execute
from opslib.actions.sqlite_locks import ReleaseSqliteLock
from opslib.archive.ledger import Ledger
from opslib.context import RunContext
from opslib.probes.sqlite_locks import held_locks, scan
from opslib.profiles import load_profile
from opslib.runbook import Runbook
from opslib.status import Status


def _holder(pid: int) -> dict:
    holders = scan(load_profile("spots"))
    rows = holders[holders["pid"] == pid]
    assert not rows.empty, f"pid {pid} not found among {holders.to_dict('records')}"
    return rows.iloc[0].to_dict()


def test_exclusive_transaction_is_named_with_its_lock(spots: Path) -> None:
    with holding("exclusive", spots) as child:
        holder = _holder(child.pid)
        finding = Runbook("t", load_profile("spots")).evaluate("sqlite_locks")
    assert holder["lock"] == "EXCLUSIVE"
    assert holder["blocks"] == "every reader and writer"
    assert "sqlite_holders.py exclusive" in holder["command"]
    assert finding.status is Status.CRITICAL
    assert f"pid {child.pid}" in finding.results[0].summary


def test_wal_writer_mid_transaction_holds_the_wal_write_lock(spots: Path) -> None:
    with holding("wal-writer", spots) as child:
        holder = _holder(child.pid)
    assert holder["lock"] == "WAL write"
    assert holder["blocks"] == "every other writer"
    assert "production.db-wal" in holder["files"]


def test_reader_mid_select_holds_shared_and_blocks_nobody_alone(spots: Path) -> None:
    with holding("reader", spots, tag="datasette") as child:
        holder = _holder(child.pid)
        competitors = Runbook("t", load_profile("spots")).evaluate("sqlite_competitors")
    assert holder["lock"] == "SHARED"
    assert holder["role"] == "reader"
    assert holder["blocks"] == ""
    assert competitors.results[0].value == 1


def test_a_stage_holding_the_write_lock_is_the_pipeline_working(spots: Path) -> None:
    with holding("exclusive", spots, tag="cli_02_assign_business_rules") as child:
        holder = _holder(child.pid)
        finding = Runbook("t", load_profile("spots")).evaluate("sqlite_locks")
    assert holder["role"] == "stage business_rules"
    assert finding.status is Status.OK


def test_proc_locks_lines_decode_to_sqlite_locks(tmp_path: Path) -> None:
    """The kernel merges adjacent ranges: PENDING+RESERVED+SHARED arrive as one line."""
    database = tmp_path / "x.db"
    database.write_bytes(b"")
    status = database.stat()
    device = f"{status.st_dev >> 8:02x}:{status.st_dev & 0xFF:02x}:{status.st_ino}"
    text = "\n".join(
        [
            f"1: POSIX  ADVISORY  WRITE 101 {device} 1073741824 1073742335",
            f"2: POSIX  ADVISORY  READ  102 {device} 1073741826 1073742335",
            f"3: POSIX  ADVISORY  WRITE 103 {device} 1073741825 1073741825",
            f"4: POSIX  ADVISORY  WRITE 104 {device} 1073741824 1073741824",
            f"4: -> POSIX  ADVISORY  WRITE 105 {device} 1073741824 1073741824",
            "5: POSIX  ADVISORY  WRITE 106 00:00:1 1073741824 EOF",
            f"6: OFDLCK ADVISORY  WRITE -1 {device} 1073741824 1073742335",
        ]
    )
    found = {held.pid: held.lock for held in held_locks(database, text)}
    assert found == {101: "EXCLUSIVE", 102: "SHARED", 103: "RESERVED", 104: "PENDING"}


def test_release_refuses_a_pid_outside_the_allowlist(spots: Path, workspace: Workspace) -> None:
    with holding("exclusive", spots, tag="nightly-report") as child:
        result = workspace.opslib(
            "run",
            "database-locks",
            "--profile",
            "spots",
            "-p",
            f"pid={child.pid}",
            "-p",
            "apply=true",
        )
        assert child.poll() is None, "a process outside processes.terminable was signalled"
    # the measured lock is CRITICAL; the refused plan (UNKNOWN) does not hide it
    assert result.returncode == 2, result.stdout + result.stderr
    assert "UNKNOWN  action:terminate_lock_holder" in result.stdout
    assert "does not match processes.terminable" in result.stdout


def test_release_terminates_only_the_planned_holder(spots: Path) -> None:
    profile = load_profile("spots")
    with (
        holding("reader", spots, tag="datasette") as bystander,
        holding("reader", spots, tag="datasette") as target,
    ):
        action = ReleaseSqliteLock(profile, pid=target.pid, wait_s=5)
        plan = action.plan()
        applied = action.apply(plan)
        target.wait(timeout=5)
        assert bystander.poll() is None, "a broad kill: the other datasette was hit too"
    assert [change["pid"] for change in plan.changes] == [target.pid]
    assert applied.changes[0]["result"] == "exited"
    assert applied.after_count == 0


def test_a_holder_still_there_after_the_signal_is_not_resolved(spots: Path) -> None:
    """It ignores SIGTERM: the release is a WARNING saying so, not an OK."""
    profile = load_profile("spots")
    with holding("deaf-reader", spots, tag="datasette") as target:
        action = ReleaseSqliteLock(profile, pid=target.pid, wait_s=1)
        context = RunContext.current("database-locks", "spots")
        outcome = execute(action, context, Ledger, apply=True)
        assert target.poll() is None
    assert outcome.applied is not None and outcome.applied.unresolved == 1
    assert outcome.result.status is Status.WARNING and "not resolved" in outcome.message


def _run_while_exclusive(
    spots: Path, workspace: Workspace, runbook: str
) -> tuple[subprocess.CompletedProcess[str], int, float]:
    """Run a runbook on the spots profile while a child holds EXCLUSIVE: (result, child
    pid, seconds the run took over the profile's busy timeout)."""
    busy_timeout_s = load_profile("spots").targets.database.connect_timeout
    with holding("exclusive", spots) as child:
        started = time.monotonic()
        result = workspace.opslib("run", runbook, "--profile", "spots", timeout=60)
        over_s = time.monotonic() - started - busy_timeout_s
    return result, child.pid, over_s


def test_database_locks_runbook_names_the_exclusive_holder_within_the_busy_timeout(
    spots: Path, workspace: Workspace
) -> None:
    result, pid, over_s = _run_while_exclusive(spots, workspace, "database-locks")
    assert result.returncode == 2, result.stdout + result.stderr
    assert over_s < 2, f"took {over_s:.1f} s more than the busy timeout"
    (report,) = workspace.reports.rglob("*database-locks*.html")
    html = report.read_text()
    assert f"pid {pid}" in html and "EXCLUSIVE" in html


def test_morning_check_on_a_locked_database_is_critical_and_names_the_holder(
    spots: Path, workspace: Workspace
) -> None:
    result, pid, over_s = _run_while_exclusive(spots, workspace, "morning-check")
    assert result.returncode == 2, result.stdout + result.stderr
    reachable = next(line for line in result.stdout.splitlines() if "database_reachable" in line)
    assert "CRITICAL" in reachable and f"pid {pid}" in reachable and "EXCLUSIVE" in reachable
    # one busy timeout for the whole run: the later database checks do not wait again
    assert over_s < 6, f"took {over_s:.1f} s more than the busy timeout"


def test_a_database_file_that_is_not_there_is_critical_not_all_clear(
    workspace: Workspace,
) -> None:
    """No process holds a lock on a file that does not exist: that must not read as
    "no one is blocking", but as the outage it is."""
    workspace.env["SPOTS_DB"] = str(workspace.root / "nonexistent.db")
    result = workspace.opslib("run", "database-locks", "--profile", "spots")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "no database file at" in result.stdout


@pytest.fixture
def datasette(spots: Path) -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [Path(sys.executable).with_name("datasette"), "serve", str(spots), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(
                f"http://127.0.0.1:{port}/production/spots.json?_size=1", timeout=2
            )
            break
        except OSError:
            if time.monotonic() > deadline or server.poll() is not None:
                server.kill()
                pytest.fail("datasette did not start serving")
            time.sleep(0.2)
    yield server.pid
    server.kill()
    server.wait(timeout=10)


def test_a_real_datasette_is_found_as_a_reader(datasette: int) -> None:
    holder = _holder(datasette)
    assert holder["role"] == "reader"
    assert "datasette" in holder["command"]


def test_secrets_on_a_holders_command_line_are_masked(spots: Path) -> None:
    with holding("reader", spots, tag="--password=hunter22") as child:
        holder = _holder(child.pid)
    assert "hunter22" not in holder["command"] and "--password=***" in holder["command"]


def test_sigkill_is_only_ever_for_one_named_holder(spots: Path) -> None:
    with holding("exclusive", spots, tag="datasette") as child:
        outcome = execute(
            ReleaseSqliteLock(load_profile("spots"), kill=True),
            RunContext.current("t", "spots"),
            Ledger,
            apply=True,
        )
        assert child.poll() is None
    assert outcome.mode == "failed" and "kill=true needs pid=N" in outcome.message


def test_a_person_rerunning_a_cell_gets_a_fresh_answer(spots: Path, tmp_path: Path) -> None:
    """Unattended runs remember an unreachable database; interactive ones must not."""
    data = yaml.safe_load((PROJECT / "parameters" / "profiles" / "spots.yaml").read_text())
    data["targets"]["database"]["connect_timeout"] = "0.3 s"
    path = tmp_path / "spots.yaml"
    path.write_text(yaml.safe_dump(data))
    runbook = Runbook("t", load_profile(str(path)))
    with holding("exclusive", spots):
        locked = runbook.evaluate("database_reachable")
    released = runbook.evaluate("database_reachable")
    assert locked.status is Status.CRITICAL and released.status is Status.OK


def test_from_inside_a_pid_namespace_the_scan_says_what_it_cannot_see(
    spots: Path, workspace: Workspace
) -> None:
    """opslib in a container, the pipeline outside it: the kernel hides the outside
    locks, so an empty answer must say it may be incomplete, and why."""
    probe = (
        "from opslib.profiles import load_profile; from opslib.runbook import Runbook; "
        "f = Runbook('t', load_profile('spots')).evaluate('sqlite_locks'); "
        "print(f.results[0].summary)"
    )
    command = ["unshare", "--pid", "--fork", "--mount-proc", sys.executable, "-c", probe]
    with holding("exclusive", spots):
        result = subprocess.run(
            command, capture_output=True, text=True, env=workspace.env, timeout=60
        )
    if result.returncode != 0 and "unshare" in result.stderr:
        pytest.skip(f"cannot make a pid namespace here: {result.stderr.strip()}")
    assert "processes outside it are not seen" in result.stdout, result.stdout + result.stderr
