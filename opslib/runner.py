"""Run a runbook: validate, execute with papermill, archive, and return a status.

The run's outcome is a monitoring status, never a bare "completed": a cell that raises,
a dead kernel, a run past its timeout or a runbook that recorded nothing are UNKNOWN
(exit 3); otherwise the worst recorded check decides. Reports are written to a private
temp name and linked into place, so no reader ever sees half a file.
"""

from __future__ import annotations

import contextlib
import difflib
import json
import os
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import nbformat

from opslib import paths
from opslib.archive import Ledger, RunRecord, report_stem
from opslib.checks import CheckResult, Status
from opslib.context import RunContext
from opslib.errors import RunbookError
from opslib.locking import link_unique, overlap_lock
from opslib.profiles import load_profile
from opslib.redact import known_secrets, redact_parameters, scrub

KERNEL_NAME = "opslib"
DEFAULT_CELL_TIMEOUT_S = 300.0
DEFAULT_TOTAL_TIMEOUT_S = 900.0
KERNEL_START_TIMEOUT_S = 60.0
TRUE_WORDS = {"true", "yes", "1", "on"}
FALSE_WORDS = {"false", "no", "0", "off"}


def runbook_paths() -> dict[str, Path]:
    """Every runbook by name: `notebooks/**/<name>.ipynb`."""
    found = {}
    for path in sorted(paths.notebooks_dir().rglob("*.ipynb")):
        if ".ipynb_checkpoints" not in path.parts:
            found[path.stem] = path
    return found


def find_runbook(name: str) -> Path:
    known = runbook_paths()
    if name in known:
        return known[name]
    close = difflib.get_close_matches(name, list(known), n=3, cutoff=0.5)
    hint = f"did you mean {', '.join(close)}?" if close else f"known: {', '.join(known)}"
    raise RunbookError(f"no runbook named {name!r} under notebooks/ ({hint})")


def declared_parameters(notebook: Path) -> dict[str, dict[str, Any]]:
    """The parameters cell's names, inferred types, defaults and help, via papermill."""
    import papermill

    return papermill.inspect_notebook(str(notebook))


def _coerce(key: str, raw: str, type_name: str) -> Any:
    if type_name == "bool":
        if raw.lower() in TRUE_WORDS:
            return True
        if raw.lower() in FALSE_WORDS:
            return False
        raise RunbookError(f"parameter {key} takes true or false, got {raw!r}")
    if type_name in {"int", "float"}:
        try:
            return int(raw) if type_name == "int" else float(raw)
        except ValueError:
            raise RunbookError(
                f"parameter {key} takes a number ({type_name}), got {raw!r}"
            ) from None
    return raw


def parse_overrides(
    runbook: str, overrides: list[str], declared: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    """`KEY=VALUE` strings checked against the declared parameters and typed like them."""
    values: dict[str, Any] = {}
    settable = sorted(name for name in declared if name != "profile")
    for item in overrides:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise RunbookError(f"parameter {item!r} is not KEY=VALUE")
        if key == "profile":
            raise RunbookError("set the profile with --profile NAME, not -p profile=…")
        if key not in declared:
            raise RunbookError(
                f"unknown parameter {key!r} for {runbook} (valid: {', '.join(settable) or 'none'})"
            )
        values[key] = _coerce(key, raw, declared[key].get("inferred_type_name", "str"))
    return values


@dataclass
class RunOutcome:
    runbook: str
    profile: str
    status: Status
    headline: str
    results: list[CheckResult]
    notebook_path: Path | None = None
    html_path: Path | None = None
    run_id: str = ""
    attention: list[CheckResult] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return int(self.status)


def git_sha() -> str | None:
    """The project's commit, `+dirty` when the tree has changes; None outside git."""
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"],
            cwd=paths.project_root(),
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=paths.project_root(),
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{sha}+dirty" if dirty else sha


@contextlib.contextmanager
def _kernel_environment(values: dict[str, str]) -> Iterator[None]:
    """Environment the kernel inherits for this run only (run id, who, where)."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _execute(
    notebook: Path, parameters: dict[str, Any], cell_timeout_s: float, total_timeout_s: float
) -> tuple[nbformat.NotebookNode | None, str]:
    """Execute on the `opslib` kernel; returns the notebook as far as it ran and the
    reason it stopped early ("" when it ran to the end without an error)."""
    import papermill
    from jupyter_client.manager import KernelManager
    from papermill.engines import NBClientEngine, papermill_engines

    executed: list[Any] = []

    class CapturingEngine(NBClientEngine):
        """Keeps a handle on the notebook so a run that dies still has a report."""

        @classmethod
        def execute_managed_notebook(cls, nb_man, kernel_name, **kwargs):  # type: ignore[no-untyped-def]
            executed.append(nb_man)
            return super().execute_managed_notebook(nb_man, kernel_name, **kwargs)

    papermill_engines.register("opslib", CapturingEngine)
    deadline = time.monotonic() + total_timeout_s

    def cell_timeout(_cell: Any) -> float:
        return max(0.1, min(cell_timeout_s, deadline - time.monotonic()))

    with tempfile.TemporaryDirectory(prefix="opslib-kernel-") as sockets:
        # IPC sockets: no TCP port to collide on, and no "unencrypted TCP" warning per run.
        kernel = KernelManager(
            kernel_name=KERNEL_NAME, transport="ipc", ip=os.path.join(sockets, "k")
        )
        reason = ""
        try:
            papermill.execute_notebook(
                str(notebook),
                None,
                parameters=parameters,
                engine_name="opslib",
                kernel_name=KERNEL_NAME,
                progress_bar=False,
                start_timeout=min(KERNEL_START_TIMEOUT_S, total_timeout_s),
                cwd=str(paths.project_root()),
                km=kernel,
                timeout_func=cell_timeout,
            )
        except Exception as exc:  # noqa: BLE001 - every way a run can fail is UNKNOWN
            reason = _failure_reason(exc, deadline, total_timeout_s)
        finally:
            # nbclient leaves a kernel it did not create running: stopping it is ours to do.
            if kernel.has_kernel:
                kernel.shutdown_kernel(now=True)
    nb = executed[0].nb if executed else None
    return nb, reason


def _failure_reason(exc: Exception, deadline: float, total_timeout_s: float) -> str:
    name = type(exc).__name__
    if name == "PapermillExecutionError":
        return f"cell {exc.exec_count} raised {exc.ename}: {exc.evalue}"  # type: ignore[attr-defined]
    if name == "CellTimeoutError" or isinstance(exc, TimeoutError):
        if time.monotonic() >= deadline - 0.5:
            return f"run exceeded its total timeout of {total_timeout_s:g} s"
        return f"a cell exceeded its timeout: {str(exc).splitlines()[0] if str(exc) else name}"
    if name == "DeadKernelError":
        return "the kernel died during the run"
    first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{name}: {first_line}" if first_line else name


def recorded_results(nb: nbformat.NotebookNode) -> list[CheckResult] | None:
    """The results the runbook glued with scrapbook, or None if it recorded nothing."""
    import scrapbook

    from opslib.runbook import RESULTS_SCRAP

    scraps = scrapbook.models.Notebook(nb).scraps
    if RESULTS_SCRAP not in scraps:
        return None
    return [CheckResult.from_record(record) for record in scraps[RESULTS_SCRAP].data]


def scrub_notebook(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The notebook with every known secret masked, in any output or metadata."""
    secrets = known_secrets()
    if not secrets:
        return nb
    text = nbformat.writes(nb)
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(json.dumps(secret)[1:-1], "***")
    return nbformat.reads(text, as_version=4)


def _write_temp(temp_dir: Path, name: str, content: str) -> Path:
    path = temp_dir / name
    path.write_text(content, encoding="utf-8")
    return path


def _sweep_temp(temp_dir: Path) -> None:
    """Remove temp files of runs whose process is gone (a `kill -9` leaves them)."""
    for stale in temp_dir.glob("*.part"):
        pid = stale.name.split("-", 1)[0]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            stale.unlink(missing_ok=True)


def run(
    runbook: str,
    profile_name: str | None = None,
    overrides: list[str] | None = None,
    *,
    by: str = "",
    wait: bool = False,
    cell_timeout_s: float = DEFAULT_CELL_TIMEOUT_S,
    total_timeout_s: float = DEFAULT_TOTAL_TIMEOUT_S,
) -> RunOutcome:
    """Validate everything, then execute and archive one run. User errors raise
    `OpslibError` before anything is written to the archive."""
    notebook = find_runbook(runbook)
    profile = load_profile(profile_name)
    profile.resolve_all()
    # The notebook gets the profile as the user named it (a name or a YAML path), never
    # anything resolved from it.
    parameters = {
        "profile": profile_name or profile.name,
        **parse_overrides(runbook, overrides or [], declared_parameters(notebook)),
    }
    reports = paths.reports_dir()
    temp_dir = reports / ".tmp"
    with overlap_lock(reports / ".locks", runbook, profile.name, wait=wait):
        temp_dir.mkdir(parents=True, exist_ok=True)
        _sweep_temp(temp_dir)
        started = datetime.now(UTC).replace(tzinfo=None)
        run_id = f"{started:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
        context = RunContext.current(runbook, profile.name)
        clock = time.monotonic()
        kernel_env = {
            "OPSLIB_RUN_ID": run_id,
            "OPSLIB_RUN_BY": by,
            "OPSLIB_REPORTS_DIR": str(reports),
        }
        with _kernel_environment(kernel_env):
            nb, failure = _execute(notebook, parameters, cell_timeout_s, total_timeout_s)
        results = (recorded_results(nb) if nb is not None else None) or []
        if not failure and not results:
            failure = "the runbook recorded no results"
        if failure:
            results.append(CheckResult("run", Status.UNKNOWN, summary=scrub(failure)))
        status = Status.worst([r.status for r in results])
        attention = [r for r in results if r.status is not Status.OK]
        headline = (
            f"{len(results)} check(s), all OK"
            if not attention
            else f"{len(attention)} of {len(results)} check(s) need attention"
        )
        outcome = RunOutcome(
            runbook, profile.name, status, headline, results, run_id=run_id, attention=attention
        )
        public_parameters = redact_parameters(parameters)
        banner = {
            "status": status.name,
            "runbook": runbook,
            "profile": profile.name,
            "headline": headline,
            "attention": [r.to_record() for r in attention],
            "started": started.strftime("%Y-%m-%d %H:%M:%S"),
            "duration_s": time.monotonic() - clock,
            "run_id": run_id,
            "who": f"{context.os_user}" + (f" (by {by})" if by else ""),
            "host": context.host,
            "git_sha": git_sha(),
            "parameters": public_parameters,
        }
        stem = reports / report_stem(runbook, profile.name, started)
        if nb is not None:
            from opslib.report import render_html

            nb = scrub_notebook(nb)
            prefix = f"{os.getpid()}-{run_id}"
            notebook_temp = _write_temp(temp_dir, f"{prefix}.ipynb.part", nbformat.writes(nb))
            html_temp = _write_temp(temp_dir, f"{prefix}.html.part", scrub(render_html(nb, banner)))
            outcome.notebook_path = link_unique(notebook_temp, stem, ".ipynb")
            outcome.html_path = outcome.notebook_path.with_suffix(".html")
            os.replace(html_temp, outcome.html_path)
            notebook_temp.unlink()
        Ledger().record_run(
            RunRecord(
                run_id=run_id,
                runbook=runbook,
                profile=profile.name,
                started_at=started,
                duration_s=banner["duration_s"],
                status=status.name,
                exit_code=int(status),
                summary=headline,
                notebook_path=_relative(outcome.notebook_path, reports),
                html_path=_relative(outcome.html_path, reports),
                git_sha=banner["git_sha"],
                os_user=context.os_user,
                run_by=by,
                host=socket.gethostname(),
                parameters=public_parameters,
            ),
            results,
        )
    from opslib.index import write_index

    write_index()
    return outcome


def _relative(path: Path | None, base: Path) -> str | None:
    return None if path is None else str(path.relative_to(base))
