"""Executing a runbook notebook on the `opslib` kernel, with timeouts that hold.

The kernel is started first and boots in its own process while the caller validates
parameters and imports papermill (two cores, no waiting). It talks over IPC sockets in a
private folder: no TCP port to collide on, and no "kernel is running over TCP without
encryption" warning on every run. Every cell gets min(cell timeout, time left of the
run's total budget) through nbclient's `timeout_func`, so a run never outlives its budget.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any

import nbformat
from jupyter_client.manager import AsyncKernelManager
from jupyter_core.utils import run_sync
from traitlets import default

from opslib.clock import Deadline
from opslib.profiles.secrets import scrub

KERNEL_NAME = "opslib"
KERNEL_START_TIMEOUT_S = 60
KERNEL_DIED = "the kernel died during the run"


class IpcKernelManager(AsyncKernelManager):
    """A kernel manager whose sockets live in a folder of its own."""

    socket_dir = ""

    @default("transport")
    def _transport_default(self) -> str:
        return "ipc"

    @default("ip")
    def _ip_default(self) -> str:
        return os.path.join(self.socket_dir, "kernel")


class KernelSession:
    """A started kernel, shut down (immediately) when the block ends, whatever happened.

    `release()` starts the shutdown early, in a thread: reaping the kernel takes ~0.1 s
    of polling that can overlap with writing the report.
    """

    def __init__(self, cwd: Path, environment: dict[str, str]) -> None:
        self.cwd = cwd
        self.environment = environment
        self.manager: IpcKernelManager | None = None
        self._shutdown: threading.Thread | None = None

    def __enter__(self) -> KernelSession:
        manager = IpcKernelManager(kernel_name=KERNEL_NAME)
        manager.socket_dir = tempfile.mkdtemp(prefix="opslib-kernel-")
        # The kernel's own stdout/stderr go to a file, not the terminal: what a cell
        # writes there unscrubbed must not reach a cron mail.
        self._log = open(os.path.join(manager.socket_dir, "kernel.log"), "w+b")
        run_sync(manager.start_kernel)(
            cwd=str(self.cwd),
            env={**os.environ, **self.environment},
            stdout=self._log,
            stderr=self._log,
        )
        self.manager = manager
        return self

    def last_words(self) -> str:
        """The kernel's last line of output, scrubbed, for the report of a dead kernel."""
        self._log.seek(0)
        lines = [
            line for line in self._log.read().decode(errors="replace").splitlines() if line.strip()
        ]
        return f" (its last output: {scrub(lines[-1][:300])})" if lines else ""

    def release(self) -> None:
        if self._shutdown is None:
            self._shutdown = threading.Thread(target=self._stop, daemon=True)
            self._shutdown.start()

    def _stop(self) -> None:
        if self.manager is not None:
            if self.manager.has_kernel:
                run_sync(self.manager.shutdown_kernel)(now=True)
            self._log.close()
            shutil.rmtree(self.manager.socket_dir, ignore_errors=True)

    def __exit__(self, *_exc: object) -> None:
        self.release()
        if self._shutdown is not None:
            self._shutdown.join()


def execute(
    session: KernelSession,
    notebook: Path,
    parameters: dict[str, Any],
    cell_timeout_s: float,
    deadline: Deadline,
    total_timeout_s: float,
) -> tuple[nbformat.NotebookNode | None, str]:
    """Run the notebook in the session's kernel, its last cell ending by `deadline` (the
    run's `total_timeout_s` less what it already spent and what archiving needs).
    Returns the notebook as far as it ran (also when it failed) and the reason it
    stopped early ("" when it did not)."""
    import papermill
    from papermill.engines import NBClientEngine, papermill_engines

    executed: list[Any] = []

    class CapturingEngine(NBClientEngine):
        """Keeps a handle on the notebook so a run that dies still has a report."""

        @classmethod
        def execute_managed_notebook(cls, nb_man, kernel_name, **kwargs):  # type: ignore[no-untyped-def]
            executed.append(nb_man)
            return super().execute_managed_notebook(nb_man, kernel_name, **kwargs)

    papermill_engines.register("opslib", CapturingEngine)

    def cell_timeout(_cell: Any) -> float:
        return min(cell_timeout_s, deadline.left(floor=0.1))

    reason = ""
    try:
        papermill.execute_notebook(
            str(notebook),
            None,
            parameters=parameters,
            engine_name="opslib",
            kernel_name=KERNEL_NAME,
            progress_bar=False,
            start_timeout=max(1, int(min(KERNEL_START_TIMEOUT_S, deadline.left()))),
            km=session.manager,
            timeout_func=cell_timeout,
        )
    except Exception as exc:  # noqa: BLE001 - every way a run can fail becomes its reason
        reason = _failure_reason(exc, deadline, cell_timeout_s, total_timeout_s)
        if reason == KERNEL_DIED:
            reason += session.last_words()
    return (executed[0].nb if executed else None), reason


def _failure_reason(
    exc: Exception, deadline: Deadline, cell_timeout_s: float, total_timeout_s: float
) -> str:
    name = type(exc).__name__
    if name == "PapermillExecutionError":
        return f"cell {exc.exec_count} raised {exc.ename}: {exc.evalue}"  # type: ignore[attr-defined]
    if name == "CellTimeoutError" or isinstance(exc, TimeoutError):
        if deadline.left() <= 0.5:
            return f"run exceeded its total timeout of {total_timeout_s:g} s"
        return f"a cell exceeded its timeout of {cell_timeout_s:g} s"
    if name == "DeadKernelError":
        return KERNEL_DIED
    first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{name}: {first_line}" if first_line else name
