"""The host checks against real processes: a required worker is counted once (not its shell
wrapper) with its CPU use, a missing or vanished one is CRITICAL, and memory and load
read as the runbook shows them."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import psutil
import pytest

from opslib.probes import processes
from opslib.profiles import load_profile
from opslib.runbook import Runbook
from opslib.status import Status

BUSY_LOOP = "print('busy', flush=True)\nwhile True:\n    pass\n"


def unique_sleep(seconds: int) -> str:
    """`sleep` with a length no other process uses, so a test run elsewhere at the same
    time (the whole suite started by someone else) cannot be counted here."""
    return f"sleep {seconds}.{uuid.uuid4().int % 10**6:06d}"


def runbook_requiring(tmp_path: Path, **required: str) -> Runbook:
    lines = "".join(f"    {name}: '{pattern}'\n" for name, pattern in required.items())
    path = tmp_path / "h.yaml"
    path.write_text("name: h\n" + (f"processes:\n  required:\n{lines}" if required else ""))
    return Runbook("t", load_profile(str(path)))


@contextmanager
def running(*command: str, shell: bool = False) -> Iterator[subprocess.Popen[str]]:
    """A child in its own process group; the group is killed and the child reaped after,
    so a wrapper's own children go too."""
    child = subprocess.Popen(
        command[0] if shell else command,
        shell=shell,
        start_new_session=True,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        yield child
    finally:
        with suppress(ProcessLookupError):  # already gone: the test killed it itself
            os.killpg(child.pid, signal.SIGKILL)
        child.wait()


def exec_child(parent: int, program: str) -> int:
    """The pid of the child `parent` forked once it has become `program`."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        for child in psutil.Process(parent).children():
            try:
                if child.cmdline()[:1] == [program]:
                    return child.pid
            except psutil.Error:
                continue
        time.sleep(0.01)
    raise AssertionError(f"pid {parent} started no {program} within 5 s")


def test_a_running_worker_is_ok_with_its_pid_in_the_table(tmp_path: Path) -> None:
    command = unique_sleep(987)
    runbook = runbook_requiring(tmp_path, worker=re.escape(command))
    with running(*command.split()) as worker:
        finding = runbook.evaluate("process_running", window_s=0.3)
    [result] = finding.results
    assert (result.name, result.status, result.value) == (
        "process_running[worker]",
        Status.OK,
        1.0,
    )
    assert f"pid {worker.pid}" in result.summary
    assert list(finding.table["pid"]) == [worker.pid]
    assert finding.table.loc[0, "open_fds"] >= 0
    assert finding.table.loc[0, "command"] == command


def test_a_worker_not_running_is_critical_saying_none_runs(tmp_path: Path) -> None:
    pattern = re.escape(unique_sleep(987))
    finding = runbook_requiring(tmp_path, worker=pattern).evaluate("process_running", window_s=0.3)
    [result] = finding.results
    assert (result.status, result.value) == (Status.CRITICAL, 0.0)
    assert result.summary == f"none running: {pattern}"


def test_a_busy_worker_shows_its_cpu_use(tmp_path: Path) -> None:
    token = uuid.uuid4().hex
    runbook = runbook_requiring(tmp_path, cruncher=token)
    with running(sys.executable, "-c", BUSY_LOOP, token) as cruncher:
        assert cruncher.stdout.readline() == "busy\n"
        finding = runbook.evaluate("process_running", window_s=0.3)
    row = finding.table.set_index("pid").loc[cruncher.pid]
    assert row["cpu_pct"] > 20, finding.table
    assert "% CPU" in finding.results[0].summary


def test_a_shell_wrapper_is_not_counted_as_a_second_worker(tmp_path: Path) -> None:
    command = unique_sleep(986)
    runbook = runbook_requiring(tmp_path, worker=re.escape(command))
    with running(f"{command}; true", shell=True) as wrapper:
        sleeper = exec_child(wrapper.pid, "sleep")
        finding = runbook.evaluate("process_running", window_s=0.3)
    [result] = finding.results
    assert (result.status, result.value) == (Status.OK, 1.0)
    assert list(finding.table["pid"]) == [sleeper]


@pytest.mark.parametrize("reaped", [True, False], ids=["exited", "zombie"])
def test_a_worker_that_exits_during_the_sample_is_not_counted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, reaped: bool
) -> None:
    command = unique_sleep(985)
    runbook = runbook_requiring(tmp_path, worker=re.escape(command))
    sample = processes.cpu_percent
    with running(*command.split()) as worker:

        def exit_while_sampled(pids: list[int], window_s: float) -> dict[int, float]:
            assert pids == [worker.pid]
            worker.kill()
            if reaped:
                worker.wait()
            return sample(pids, window_s)

        monkeypatch.setattr(processes, "cpu_percent", exit_while_sampled)
        finding = runbook.evaluate("process_running", window_s=0.1)
    [result] = finding.results
    assert (result.status, result.value) == (Status.CRITICAL, 0.0)
    assert result.summary.startswith("none running")


def test_memory_in_use_is_a_percentage_with_the_largest_processes(tmp_path: Path) -> None:
    finding = runbook_requiring(tmp_path).evaluate("host_memory")
    [result] = finding.results
    assert 0 < result.value < 100
    assert "available of" in result.summary
    assert list(finding.table.columns) == ["pid", "user", "rss", "command"]
    assert 0 < len(finding.table) <= 10


def test_load_is_judged_per_core_over_one_five_and_fifteen_minutes(tmp_path: Path) -> None:
    finding = runbook_requiring(tmp_path).evaluate("host_load", window_s=0.2)
    assert [result.name for result in finding.results] == [
        "host_load[1m]",
        "host_load[5m]",
        "host_load[15m]",
    ]
    cores = len(os.sched_getaffinity(0))
    for result in finding.results:
        assert result.value >= 0
        assert f"over {cores} core(s)" in result.summary
    assert finding.tables[1] is None and finding.tables[2] is None
