"""Every way a run can go wrong ends UNKNOWN (exit 3), never OK, with the archive intact."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import time

from support import Workspace

OPEN = 'from opslib.runbook import Runbook\nrb = Runbook.open("{name}", profile)'
CHECK = 'rb.evaluate("database_reachable")'
FINISH = "rb.finish()"


def start_holding_the_lock(workspace: Workspace, runbook: str):  # type: ignore[no-untyped-def]
    """Start `opslib run RUNBOOK` and return once it holds its overlap lock."""
    process = workspace.popen("run", runbook)
    lock = workspace.reports / ".locks" / f"{runbook}--demo.lock"
    deadline = time.monotonic() + 30
    while not (lock.exists() and lock.read_text().strip()) and time.monotonic() < deadline:
        time.sleep(0.1)
    return process


def test_raising_cell_is_unknown_with_the_error_in_the_archived_report(
    workspace: Workspace,
) -> None:
    workspace.add_runbook(
        "raises", OPEN.format(name="raises"), 'rb.evaluate("stuck_jobs")', "1 / 0", FINISH
    )
    result = workspace.opslib("run", "raises")
    assert result.returncode == 3, result.stdout + result.stderr
    assert "UNKNOWN  run: cell 5 raised ZeroDivisionError" in result.stdout
    assert "WARNING  stuck_jobs" in result.stdout, "what was found before the error is kept"
    (html,) = [p for p in workspace.archive_files() if p.suffix == ".html"]
    page = html.read_text()
    assert "opslib-UNKNOWN" in page and "this step stopped: ZeroDivisionError" in page
    # the traceback is folded away at the end for a bug report, papermill's banner is gone
    visible, _, folded = page.partition("<details>")
    assert "Traceback" not in visible and "An Exception was encountered" not in page
    assert "ZeroDivisionError" in folded and "1 / 0" in folded


def test_a_caught_bug_keeps_its_traceback_when_a_later_cell_stops_the_run(
    workspace: Workspace,
) -> None:
    """The step's line says "details below": they once came from finish(), which a later
    raising cell never reaches. Both tracebacks are folded together at the end."""
    broken = "def broken(profile):\n    raise RuntimeError('the probe has a bug')\nrb.call(broken)"
    workspace.add_runbook("buggy", OPEN.format(name="buggy"), broken, "1 / 0", FINISH)
    result = workspace.opslib("run", "buggy")
    assert result.returncode == 3, result.stdout + result.stderr
    (html,) = [p for p in workspace.archive_files() if p.suffix == ".html"]
    visible, _, folded = html.read_text().partition("<details>")
    assert "please report it with the details below" in visible and "Traceback" not in visible
    assert "(2 traceback(s))" in folded and "<details>" not in folded
    assert "the probe has a bug" in folded and "ZeroDivisionError" in folded


def test_runbook_that_records_nothing_is_unknown(workspace: Workspace) -> None:
    workspace.add_runbook("silent", "x = 1")
    result = workspace.opslib("run", "silent")
    assert result.returncode == 3
    assert "recorded no results" in result.stdout


def test_total_timeout_stops_the_run_as_unknown(workspace: Workspace) -> None:
    workspace.add_runbook(
        "slow", OPEN.format(name="slow"), CHECK, "import time\ntime.sleep(60)", FINISH
    )
    started = time.monotonic()
    result = workspace.opslib("run", "slow", "--timeout", "6")
    elapsed = time.monotonic() - started
    assert result.returncode == 3, result.stdout + result.stderr
    assert "total timeout of 6 s" in result.stdout
    assert elapsed < 20, f"a 6 s budget took {elapsed:.1f} s"
    assert any(p.suffix == ".html" for p in workspace.archive_files())


def test_cell_timeout_is_reported_as_such(workspace: Workspace) -> None:
    workspace.add_runbook(
        "stalls", OPEN.format(name="stalls"), "import time\ntime.sleep(60)", FINISH
    )
    result = workspace.opslib("run", "stalls", "--cell-timeout", "2")
    assert result.returncode == 3
    assert "a cell exceeded its timeout" in result.stdout


def test_second_concurrent_run_refuses_naming_the_running_pid(workspace: Workspace) -> None:
    workspace.add_runbook(
        "long", OPEN.format(name="long"), "import time\ntime.sleep(8)", CHECK, FINISH
    )
    first = start_holding_the_lock(workspace, "long")
    second = workspace.opslib("run", "long")
    first_out, first_err = first.communicate(timeout=60)
    assert second.returncode == 3
    assert second.stderr.strip() == (
        f"opslib: long is already running for profile demo (pid {first.pid}); "
        "not starting a second run (use --wait to queue behind it)"
    )
    assert first.returncode == 0, first_out + first_err
    assert len([p for p in workspace.archive_files() if p.suffix == ".html"]) == 1


def test_kill_9_mid_run_leaves_no_partial_report_and_a_consistent_ledger(
    workspace: Workspace,
) -> None:
    workspace.opslib("run", "morning-check")
    workspace.add_runbook(
        "killed", OPEN.format(name="killed"), CHECK, "import time\ntime.sleep(30)", FINISH
    )
    victim = start_holding_the_lock(workspace, "killed")
    time.sleep(3)  # inside the sleeping cell by now
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait(timeout=10)
    reports = {p.name for p in workspace.archive_files()}
    assert not any(name.startswith("killed--") for name in reports)
    assert not [p for p in workspace.reports.rglob("*.html") if p.name.startswith(".")]
    with sqlite3.connect(workspace.reports / "ledger.sqlite") as ledger:
        assert ledger.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        runs = ledger.execute("SELECT runbook, html_path FROM runs").fetchall()
        orphans = ledger.execute(
            "SELECT COUNT(*) FROM check_results WHERE run_id NOT IN (SELECT run_id FROM runs)"
        ).fetchone()
    assert [runbook for runbook, _ in runs] == ["morning-check"]
    assert all((workspace.reports / html).exists() for _, html in runs)
    assert orphans == (0,)
    # the lock died with the process: the next run starts at once
    again = workspace.opslib("run", "morning-check")
    assert again.returncode == 1, again.stderr


def test_sys_exit_in_a_cell_is_unknown_not_ok(workspace: Workspace) -> None:
    workspace.add_runbook(
        "exits",
        OPEN.format(name="exits"),
        CHECK,
        "raise SystemExit(0)",
        'rb.evaluate("stuck_jobs")',
        FINISH,
    )
    result = workspace.opslib("run", "exits")
    assert result.returncode == 3, result.stdout
    assert "the run stopped early: 2 cell(s) never ran" in result.stdout


def test_sigterm_mid_run_is_archived_as_unknown(workspace: Workspace) -> None:
    workspace.add_runbook(
        "stopped", OPEN.format(name="stopped"), CHECK, "import time\ntime.sleep(30)", FINISH
    )
    victim = start_holding_the_lock(workspace, "stopped")
    time.sleep(3)
    victim.send_signal(signal.SIGTERM)
    out, err = victim.communicate(timeout=30)
    assert victim.returncode == 3, out + err
    assert "terminated by SIGTERM" in out
    assert any(p.suffix == ".html" for p in workspace.archive_files())
    with sqlite3.connect(workspace.reports / "ledger.sqlite") as ledger:
        assert ledger.execute("SELECT status FROM runs").fetchall() == [("UNKNOWN",)]


def test_wait_queues_behind_a_running_instance_but_not_past_the_timeout(
    workspace: Workspace,
) -> None:
    workspace.add_runbook(
        "busy", OPEN.format(name="busy"), "import time\ntime.sleep(20)", CHECK, FINISH
    )
    first = start_holding_the_lock(workspace, "busy")
    started = time.monotonic()
    second = workspace.opslib("run", "busy", "--wait", "--timeout", "5")
    waited = time.monotonic() - started
    first.kill()
    first.wait()
    assert second.returncode == 3
    # the wait is what the command's --timeout leaves, not a second --timeout on top
    assert re.search(r"not starting a second run after waiting [234]\.\d s", second.stderr)
    # it gives up with time left for a run's cells and report, never past --timeout
    assert 2.5 < waited < 5.5


def test_a_failing_call_is_one_unknown_line_and_the_next_steps_still_run(
    workspace: Workspace,
) -> None:
    workspace.add_runbook(
        "calls",
        OPEN.format(name="calls"),
        'def broken(profile):\n    raise KeyError("cycle_summaries")',
        "rb.call(broken)",
        'rb.evaluate("stuck_jobs")',
        FINISH,
    )
    result = workspace.opslib("run", "calls")
    assert result.returncode == 3, result.stdout + result.stderr
    assert "UNKNOWN  broken: failed (KeyError: 'cycle_summaries')" in result.stdout
    assert "WARNING  stuck_jobs" in result.stdout, "the cells after the failure still ran"
    (html,) = [p for p in workspace.archive_files() if p.suffix == ".html"]
    visible, _, folded = html.read_text().partition("<details>")
    assert "Traceback" not in visible and "raise KeyError" in folded
