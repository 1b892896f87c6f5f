"""The runner under fire, as cron runs it: a cell that raises, exits or kills its kernel,
runs past its timeouts, a runner killed or stopped by a signal, a second run started
while the first holds the lock, a queued `--wait`. Each ends UNKNOWN (a SIGKILL has no
status to give), within its --timeout + 10 %, with a complete archive, no row changed and
no process of the run left behind."""

from __future__ import annotations

import contextlib
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

import pytest
from faults_support import (
    Scenario,
    assert_clean_archive,
    assert_within,
    bound,
    finish,
    processes_with_environment,
    runbook_cells,
    sqlite_digest,
    start_opslib,
    statuses,
    touch_then_sleep,
    wait_for_file,
)
from support import Workspace

from opslib.status import Status

RUNBOOK = "fault-run"
CHECK = 'rb.evaluate("database_reachable")'
KILLED = statuses()  # a SIGKILLed runner has no status to give


@dataclass
class Stage:
    workspace: Workspace
    marker: Path  # the long cell touches it once it runs


Setup = Callable[[Stage], AbstractContextManager[signal.Signals | None]]


def runbook(*steps: str) -> Setup:
    """A setup: the test runbook with these steps (`{marker}` is the marker's path);
    nothing is sent to the run."""

    @contextlib.contextmanager
    def setup(stage: Stage) -> Iterator[signal.Signals | None]:
        cells = [step.replace("{marker}", str(stage.marker)) for step in steps]
        stage.workspace.add_runbook(RUNBOOK, *runbook_cells(RUNBOOK, *cells))
        yield None

    return setup


def long_cell_then(sent: signal.Signals) -> Setup:
    """A setup: the runner gets `sent` while its kernel sleeps in a cell."""

    @contextlib.contextmanager
    def setup(stage: Stage) -> Iterator[signal.Signals | None]:
        stage.workspace.add_runbook(
            RUNBOOK, *runbook_cells(RUNBOOK, CHECK, touch_then_sleep(stage.marker, 30))
        )
        yield sent

    return setup


def first_run_holding_the_lock(sleep_s: float) -> Setup:
    """A setup: a first run of the same runbook, in its long cell; after the scenario it
    must still finish OK."""

    @contextlib.contextmanager
    def setup(stage: Stage) -> Iterator[signal.Signals | None]:
        workspace = stage.workspace
        workspace.add_runbook(
            RUNBOOK, *runbook_cells(RUNBOOK, touch_then_sleep(stage.marker, sleep_s), CHECK)
        )
        started = time.monotonic()
        first = start_opslib(workspace.env, workspace.root, "run", RUNBOOK, "--format", "json")
        wait_for_file(stage.marker, first)
        try:
            yield None
        except BaseException:
            first.kill()
            first.wait()
            raise
        ran = finish(first, started)
        assert ran.returncode == 0, ran.output
        assert_clean_archive(workspace.reports, ran.stdout, ran.stderr)

    return setup


SCENARIOS = [
    Scenario("runner-cell-raises", "a cell raises RuntimeError",
             runbook(CHECK, 'raise RuntimeError("the step broke")'),
             ("run", RUNBOOK, "--timeout", "10"), statuses(Status.UNKNOWN), bound(10)),
    Scenario("runner-sys-exit", "a cell calls sys.exit(0)",
             runbook(CHECK, "import sys\nsys.exit(0)", CHECK),
             ("run", RUNBOOK, "--timeout", "10"), statuses(Status.UNKNOWN), bound(10)),
    Scenario("runner-kernel-killed", "a cell SIGKILLs its own kernel",
             runbook(CHECK, "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)", CHECK),
             ("run", RUNBOOK, "--timeout", "10"), statuses(Status.UNKNOWN), bound(10)),
    Scenario("runner-total-timeout", "a cell sleeps 60 s; --timeout 8",
             runbook(CHECK, touch_then_sleep("{marker}", 60)),
             ("run", RUNBOOK, "--timeout", "8"), statuses(Status.UNKNOWN), bound(8)),
    Scenario("runner-cell-timeout", "a cell sleeps 60 s; --cell-timeout 2",
             runbook(CHECK, touch_then_sleep("{marker}", 60)),
             ("run", RUNBOOK, "--cell-timeout", "2", "--timeout", "10"),
             statuses(Status.UNKNOWN), bound(10)),
    Scenario("runner-sigkill", "the runner gets SIGKILL mid-cell", long_cell_then(signal.SIGKILL),
             ("run", RUNBOOK, "--timeout", "10"), KILLED, bound(10)),
    Scenario("runner-sigterm", "the runner gets SIGTERM mid-cell", long_cell_then(signal.SIGTERM),
             ("run", RUNBOOK, "--timeout", "10"), statuses(Status.UNKNOWN), bound(10)),
    Scenario("runner-sigint", "the runner gets SIGINT (Ctrl-C) mid-cell",
             long_cell_then(signal.SIGINT),
             ("run", RUNBOOK, "--timeout", "10"), statuses(Status.UNKNOWN), bound(10)),
    Scenario("runner-concurrent-start", "a second run while the first holds the lock",
             first_run_holding_the_lock(3),
             ("run", RUNBOOK, "--timeout", "10"), statuses(Status.UNKNOWN), bound(10)),
    Scenario("runner-wait", "--wait --timeout 8 behind a first run sleeping 4 s; 4 s of its own",
             first_run_holding_the_lock(4),
             ("run", RUNBOOK, "--wait", "--timeout", "8"), statuses(Status.UNKNOWN), bound(8)),
]  # fmt: skip


@pytest.mark.parametrize("scenario", SCENARIOS, ids=str)
def test_runner_fault_ends_unknown_within_its_timeout(
    scenario: Scenario, workspace: Workspace
) -> None:
    database = workspace.data / "demo" / "pipeline.db"
    before = sqlite_digest(database)
    marker = workspace.root / "in-the-long-cell"
    with scenario.setup(Stage(workspace, marker)) as sent:
        started = time.monotonic()
        process = start_opslib(workspace.env, workspace.root, *scenario.command, "--format", "json")
        if sent is not None:
            wait_for_file(marker, process)
            process.send_signal(sent)
        ran = finish(process, started, kill_after_s=2 * scenario.bound_s + 10)
    assert_within(scenario.name, ran.elapsed_s, scenario.bound_s)
    if scenario.expected == KILLED:
        assert ran.returncode == -signal.SIGKILL, ran.output
    else:
        assert Status(ran.returncode) in scenario.expected, ran.output
        outcome = ran.json()
        assert outcome["status"] == Status(ran.returncode).name, outcome
        if outcome.get("report"):
            assert (workspace.root / outcome["report"]).is_file(), outcome["report"]
    assert_clean_archive(workspace.reports, ran.stdout, ran.stderr)
    assert sqlite_digest(database) == before
    _assert_nothing_left_running(workspace)


def _assert_nothing_left_running(workspace: Workspace, grace_s: float = 3) -> None:
    """No process of the run (its kernel above all) outlives it by more than `grace_s`."""
    ours = f"OPSLIB_REPORTS_DIR={workspace.reports}"
    deadline = time.monotonic() + grace_s
    while (left := processes_with_environment(ours)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not left, f"processes of the run still alive: {left}"
