"""Freeing GPU memory: the `gpu_free_memory` check (the video manual's 4 GB rule) and the
`FreeGpuMemory` fix, against the NVML stand-in and real processes the stand-in reports as
holding memory (it frees their memory when they end, as the driver does)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import fake_pynvml
import pytest
from fake_pynvml import GIB, FakeDevice

from opslib.actions import execute
from opslib.actions.gpu import FreeGpuMemory
from opslib.archive.ledger import Ledger
from opslib.context import RunContext
from opslib.profiles import Profile, load_profile
from opslib.runbook import Runbook
from opslib.status import Status

WORKER = "import time; print('ready', flush=True); time.sleep(60)"
DEAF_WORKER = (
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
    "print('ready', flush=True); time.sleep(60)"
)


@pytest.fixture
def nvml(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> ModuleType:
    fake_pynvml.configure([])
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml)
    monkeypatch.setenv("OPSLIB_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("OPSLIB_REPORTS_DIR", str(tmp_path / "reports"))
    return fake_pynvml


@pytest.fixture
def spawn() -> Iterator[Callable[..., subprocess.Popen[str]]]:
    """Start a real python child whose command line ends in `tag` (what the allowlist
    matches); every child is ended and reaped afterwards."""
    children: list[subprocess.Popen[str]] = []

    def start(tag: str, code: str = WORKER) -> subprocess.Popen[str]:
        child = subprocess.Popen(
            [sys.executable, "-c", code, tag], stdout=subprocess.PIPE, text=True
        )
        children.append(child)
        # its command line is the child's own once it runs python (not the fork's, yet)
        assert child.stdout is not None and child.stdout.readline() == "ready\n"
        return child

    yield start
    for child in children:
        child.kill()
        child.wait()


def profile_at(tmp_path: Path, gpu: str = "{terminable: [render_worker]}") -> Profile:
    path = tmp_path / "g.yaml"
    path.write_text(f"name: g\ntargets:\n  gpu: {gpu}\n")
    return load_profile(str(path))


def device(*holders: tuple[int, int], free: int = 3 * GIB) -> FakeDevice:
    """An 80 GiB card with `free` left, the rest held by `holders` (pid, bytes) and others."""
    return FakeDevice(memory_used=80 * GIB - free, processes=list(holders), release_on_exit=True)


@pytest.mark.parametrize(
    ("free_gib", "status"),
    [(10, Status.OK), (3, Status.WARNING), (1.5, Status.CRITICAL)],
)
def test_free_memory_is_judged_against_the_manuals_4_gib(
    nvml: ModuleType, tmp_path: Path, free_gib: float, status: Status
) -> None:
    nvml.configure([FakeDevice(memory_used=int((80 - free_gib) * GIB))])
    [result] = Runbook("t", profile_at(tmp_path)).evaluate("gpu_free_memory").results
    assert (result.name, result.status, result.value) == (
        "gpu_free_memory[gpu0]",
        status,
        free_gib * GIB,
    )


def test_without_nvml_the_check_and_the_plan_are_unknown_saying_why(
    nvml: ModuleType, tmp_path: Path
) -> None:
    nvml.configure([], init_error=nvml.NVMLError_DriverNotLoaded)
    profile = profile_at(tmp_path)
    [result] = Runbook("t", profile).evaluate("gpu_free_memory").results
    assert result.status is Status.UNKNOWN
    assert result.summary.startswith("NVML not available: NVIDIA driver not loaded")
    outcome = execute(FreeGpuMemory(profile), RunContext.current("gpu", "g"), Ledger)
    assert outcome.result.status is Status.UNKNOWN
    assert "could not plan: NVML not available: NVIDIA driver not loaded" in outcome.message


def test_the_plan_names_each_holder_and_leaves_what_is_not_allowed_alone(
    nvml: ModuleType, tmp_path: Path, spawn: Callable[..., subprocess.Popen[str]]
) -> None:
    worker, notebook = spawn("render_worker"), spawn("jupyter-kernel")
    nvml.configure([device((worker.pid, 60 * GIB), (notebook.pid, 10 * GIB))])
    outcome = execute(FreeGpuMemory(profile_at(tmp_path)), RunContext.current("gpu", "g"), Ledger)
    assert outcome.mode == "dry-run"
    plan = outcome.plan
    assert [(c["pid"], c["device"], c["signal"]) for c in plan.changes] == [
        (worker.pid, 0, "SIGTERM")
    ]
    assert plan.changes[0]["command"].endswith("render_worker")
    table = plan.context.set_index("pid")
    assert table.loc[worker.pid, "held"] == "60 GiB"
    assert table.loc[notebook.pid, "left_alone"] == "not in targets.gpu.terminable"
    assert table.loc[worker.pid, "user"]
    assert f"left alone: pid {notebook.pid}" in plan.summary
    assert worker.poll() is None and notebook.poll() is None  # a dry run signals nobody


def test_apply_ends_only_the_allowed_holder_and_nvml_shows_the_memory_back(
    nvml: ModuleType, tmp_path: Path, spawn: Callable[..., subprocess.Popen[str]]
) -> None:
    worker, notebook = spawn("render_worker"), spawn("jupyter-kernel")
    state = nvml.configure([device((worker.pid, 60 * GIB), (notebook.pid, 10 * GIB))])
    outcome = execute(
        FreeGpuMemory(profile_at(tmp_path), grace_s=5),
        RunContext.current("gpu", "g"),
        Ledger,
        apply=True,
    )
    assert outcome.mode == "applied" and outcome.result.status is Status.OK, outcome.message
    worker.wait(timeout=5)  # ended (reaped by the signaller already: no status left)
    assert notebook.poll() is None, "a holder outside the allowlist was signalled"
    applied = outcome.applied
    assert applied is not None and applied.remeasured and applied.after_count == 0
    [change] = applied.changes
    assert change["result"] == "exited"
    assert (change["free_before"], change["free_after"]) == (3 * GIB, 63 * GIB)
    assert {p["pid"] for p in applied.backup["processes"]} == {worker.pid, notebook.pid}
    assert state.devices[0].holding() == [(notebook.pid, 10 * GIB)]


def test_a_process_ignoring_sigterm_is_unresolved_unless_the_plan_escalates(
    nvml: ModuleType, tmp_path: Path, spawn: Callable[..., subprocess.Popen[str]]
) -> None:
    deaf = spawn("render_worker", DEAF_WORKER)
    nvml.configure([device((deaf.pid, 70 * GIB))])
    profile, context = profile_at(tmp_path), RunContext.current("gpu", "g")
    outcome = execute(FreeGpuMemory(profile, grace_s=0.5), context, Ledger, apply=True)
    assert deaf.poll() is None
    assert outcome.applied.unresolved == 1 and outcome.applied.changes[0]["result"] == (
        "still running"
    )
    assert outcome.result.status is Status.WARNING and "not resolved" in outcome.message

    action = FreeGpuMemory(profile, escalate=True, grace_s=1)
    plan = action.plan()
    assert plan.changes[0]["signal"] == "SIGTERM, then SIGKILL"
    applied = action.apply(plan)
    deaf.wait(timeout=5)
    assert applied.changes[0]["result"] == "killed" and applied.after_count == 0


def test_a_card_with_enough_free_memory_is_left_alone(
    nvml: ModuleType, tmp_path: Path, spawn: Callable[..., subprocess.Popen[str]]
) -> None:
    worker = spawn("render_worker")
    nvml.configure([device((worker.pid, 60 * GIB), free=12 * GIB)])
    plan = FreeGpuMemory(profile_at(tmp_path)).plan()
    assert plan.empty and "nothing to end" in plan.summary
    # named by pid, it is planned whatever the card's free memory
    chosen = FreeGpuMemory(profile_at(tmp_path), pid=worker.pid).plan()
    assert [c["pid"] for c in chosen.changes] == [worker.pid]


def test_apply_skips_a_pid_that_ended_or_is_another_process_now(
    nvml: ModuleType, tmp_path: Path, spawn: Callable[..., subprocess.Popen[str]]
) -> None:
    gone, reused = spawn("render_worker"), spawn("render_worker")
    nvml.configure([device((gone.pid, 30 * GIB), (reused.pid, 30 * GIB))])
    action = FreeGpuMemory(profile_at(tmp_path), grace_s=1)
    plan = action.plan()
    gone.kill()
    gone.wait()
    # the same pid with another start time: what a reused pid looks like
    changes = tuple(
        {**c, "started": c["started"] - 100} if c["pid"] == reused.pid else c for c in plan.changes
    )
    applied = action.apply(
        type(plan)(plan.action, plan.target, plan.summary, changes, plan.context)
    )
    assert reused.poll() is None
    assert sorted(applied.skipped) == sorted([gone.pid, reused.pid])
    results = {c["pid"]: c["result"] for c in applied.changes}
    assert results == {
        gone.pid: "no longer holds GPU memory",
        reused.pid: "gone before the signal",
    }
    assert applied.changed == 0 and applied.before_count == 0


def test_a_pid_named_outside_the_allowlist_is_refused_not_signalled(
    nvml: ModuleType, tmp_path: Path, spawn: Callable[..., subprocess.Popen[str]]
) -> None:
    notebook = spawn("jupyter-kernel")
    nvml.configure([device((notebook.pid, 60 * GIB))])
    action = FreeGpuMemory(profile_at(tmp_path), pid=notebook.pid)
    outcome = execute(action, RunContext.current("gpu", "g"), Ledger, apply=True)
    assert outcome.result.status is Status.UNKNOWN
    assert f"refusing to signal pid {notebook.pid}" in outcome.message
    assert "not in targets.gpu.terminable" in outcome.message
    assert notebook.poll() is None
