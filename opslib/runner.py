"""Run a runbook: validate, execute with papermill, archive, and return a status.

The run's outcome is a monitoring status, never a bare "completed": a cell that raises,
a dead kernel, a run past its timeout or a runbook that recorded nothing are UNKNOWN
(exit 3); otherwise the worst recorded check decides. Reports are written to a private
temp name and linked into place, so no reader ever sees half a file.
"""

from __future__ import annotations

import ast
import difflib
import json
import logging
import os
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import nbformat

from opslib import paths
from opslib.checks import CheckResult, Status
from opslib.context import RunContext
from opslib.errors import RunbookError
from opslib.execution import KernelSession, execute
from opslib.locking import link_unique, overlap_lock
from opslib.profiles import load_profile
from opslib.redact import known_secrets, redact_parameters, scrub
from opslib.runbooks import RESULTS_SCRAP

# papermill and nbclient log cell errors and timeouts; the run's outcome reports them
# once, in the status line and the report, so they are not printed twice.
logging.getLogger("papermill").addHandler(logging.NullHandler())

DEFAULT_CELL_TIMEOUT_S = 300.0
DEFAULT_TOTAL_TIMEOUT_S = 900.0
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


def _type_name(spec: dict[str, Any]) -> str:
    """The declared type (from an annotation), else the type of the default literal."""
    declared = spec.get("inferred_type_name", "None")
    if declared not in {"None", ""}:
        return declared
    try:
        return type(ast.literal_eval(spec.get("default", "None"))).__name__
    except (ValueError, SyntaxError):
        return "str"


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
        values[key] = _coerce(key, raw, _type_name(declared[key]))
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


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", *args],
        cwd=paths.project_root(),
        capture_output=True,
        text=True,
        timeout=5,
        check=True,
    ).stdout.strip()


def git_sha() -> str | None:
    """The project's commit, `+dirty` when the tree has changes; None outside git."""
    try:
        sha = _git("rev-parse", "--short=12", "HEAD")
        dirty = _git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{sha}+dirty" if dirty else sha


def recorded_results(nb: nbformat.NotebookNode) -> list[CheckResult] | None:
    """The results the runbook glued with scrapbook, or None if it recorded nothing."""
    import scrapbook

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
    reports = paths.reports_dir()
    run_id = uuid.uuid4().hex[:12]
    started = datetime.now(UTC).replace(tzinfo=None)
    clock = time.monotonic()
    kernel_env = {"OPSLIB_RUN_ID": run_id, "OPSLIB_RUN_BY": by, "OPSLIB_REPORTS_DIR": str(reports)}
    # The kernel boots while the parameters are checked; bad input only costs its shutdown.
    with KernelSession(paths.project_root(), kernel_env) as kernel:
        # The notebook gets the profile as the user named it (a name or a YAML path),
        # never anything resolved from it.
        parameters = {
            "profile": profile_name or profile.name,
            **parse_overrides(runbook, overrides or [], declared_parameters(notebook)),
        }
        with overlap_lock(reports / ".locks", runbook, profile.name, wait=wait):
            # The second core prepares the report machinery while the kernel runs.
            warm_up = threading.Thread(target=_prepare_reporting, daemon=True)
            warm_up.start()
            nb, failure = execute(kernel, notebook, parameters, cell_timeout_s, total_timeout_s)
            kernel.release()
            warm_up.join()
            facts = RunFacts(runbook, profile.name, run_id, started, clock, by, parameters)
            outcome = _archive(facts, nb, failure, reports)
    from opslib.index import write_index

    write_index()
    return outcome


@dataclass
class RunFacts:
    """What is known about a run before its results: the ledger row's identity."""

    runbook: str
    profile: str
    run_id: str
    started: datetime
    clock: float
    by: str
    parameters: dict[str, Any]


def _judge_run(nb: nbformat.NotebookNode | None, failure: str) -> list[CheckResult]:
    """The recorded results, plus an UNKNOWN `run` result for whatever went wrong."""
    results = (recorded_results(nb) if nb is not None else None) or []
    if not failure and not results:
        failure = "the runbook recorded no results"
    if failure:
        results.append(CheckResult("run", Status.UNKNOWN, summary=scrub(failure)))
    return results


def _archive(
    facts: RunFacts, nb: nbformat.NotebookNode | None, failure: str, reports: Path
) -> RunOutcome:
    """Write the notebook and HTML (temp name, then linked into place) and the ledger row."""
    from opslib.archive import Ledger, RunRecord, report_stem
    from opslib.report import render_html

    results = _judge_run(nb, failure)
    status = Status.worst([r.status for r in results])
    attention = [r for r in results if r.status is not Status.OK]
    headline = (
        f"{len(results)} check(s), all OK"
        if not attention
        else f"{len(attention)} of {len(results)} check(s) need attention"
    )
    outcome = RunOutcome(
        facts.runbook,
        facts.profile,
        status,
        headline,
        results,
        run_id=facts.run_id,
        attention=attention,
    )
    context = RunContext.current(facts.runbook, facts.profile)
    public_parameters = redact_parameters(facts.parameters)
    sha = git_sha()
    duration_s = time.monotonic() - facts.clock
    if nb is not None:
        banner = {
            "status": status.name,
            "runbook": facts.runbook,
            "profile": facts.profile,
            "headline": headline,
            "attention": [r.to_record() for r in attention],
            "started": facts.started.strftime("%Y-%m-%d %H:%M:%S"),
            "duration_s": duration_s,
            "run_id": facts.run_id,
            "who": context.os_user + (f" (by {facts.by})" if facts.by else ""),
            "host": context.host,
            "git_sha": sha,
            "parameters": public_parameters,
        }
        nb = scrub_notebook(nb)
        temp_dir = reports / ".tmp"
        temp_dir.mkdir(parents=True, exist_ok=True)
        _sweep_temp(temp_dir)
        prefix = f"{os.getpid()}-{facts.run_id}"
        notebook_temp = _write_temp(temp_dir, f"{prefix}.ipynb.part", nbformat.writes(nb))
        html_temp = _write_temp(temp_dir, f"{prefix}.html.part", scrub(render_html(nb, banner)))
        stem = reports / report_stem(facts.runbook, facts.profile, facts.started)
        outcome.notebook_path = link_unique(notebook_temp, stem, ".ipynb")
        outcome.html_path = outcome.notebook_path.with_suffix(".html")
        os.replace(html_temp, outcome.html_path)
        notebook_temp.unlink()
    Ledger().record_run(
        RunRecord(
            run_id=facts.run_id,
            runbook=facts.runbook,
            profile=facts.profile,
            started_at=facts.started,
            duration_s=duration_s,
            status=status.name,
            exit_code=int(status),
            summary=headline,
            notebook_path=_relative(outcome.notebook_path, reports),
            html_path=_relative(outcome.html_path, reports),
            git_sha=sha,
            os_user=context.os_user,
            run_by=facts.by,
            host=context.host,
            parameters=public_parameters,
        ),
        results,
    )
    return outcome


def _prepare_reporting() -> None:
    """Import and load what archiving needs (nbconvert, its template, scrapbook, the
    ledger's SQLAlchemy)."""
    import scrapbook.models  # noqa: F401

    import opslib.archive  # noqa: F401
    from opslib.report import prepare_exporter

    prepare_exporter()


def _relative(path: Path | None, base: Path) -> str | None:
    return None if path is None else str(path.relative_to(base))
