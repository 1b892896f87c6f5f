"""Run a runbook: validate, execute with papermill, archive, and return a status.

The run's outcome is a monitoring status, never a bare "completed": a cell that raises,
a dead kernel, a run past its timeout, a run stopped by a signal or by `sys.exit`, or a
runbook that recorded nothing are UNKNOWN (exit 3); otherwise the worst recorded check
decides. What was found before a failure is kept, and the report is archived either way.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import nbformat

from opslib import paths
from opslib.alerting.severity import Severity, classify
from opslib.archive.exporters import RunSummary
from opslib.checks import CheckResult
from opslib.clock import utc_now
from opslib.context import RunContext, git_sha
from opslib.errors import OpslibError
from opslib.notebooks import (
    RESULTS_SCRAP,
    declared_parameters,
    find_runbook,
    parse_overrides,
    refuse_unless_applies,
)
from opslib.profiles import Profile, load_profile
from opslib.profiles.secrets import redact_parameters, scrub, scrub_values
from opslib.runner import DEFAULT_CELL_TIMEOUT_S, DEFAULT_TOTAL_TIMEOUT_S
from opslib.runner.kernel import KernelSession, execute
from opslib.runner.lock import overlap_lock
from opslib.status import Status

# papermill and nbclient log cell errors and timeouts; the run's outcome reports them
# once, in the status line and the report, so they are not printed twice.
logging.getLogger("papermill").addHandler(logging.NullHandler())


class Terminated(OpslibError):
    """The run was told to stop (SIGTERM from cron or Kubernetes, Ctrl-C)."""


@contextlib.contextmanager
def _stop_on_signals() -> Iterator[None]:
    """Turn SIGTERM and SIGINT into `Terminated`, so a stopped run is archived as
    UNKNOWN instead of vanishing from the history."""

    def stop(signum: int, _frame: object) -> None:
        raise Terminated(f"terminated by {signal.Signals(signum).name}")

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@dataclass
class RunOutcome:
    """What one run came to: its status and results, its report, what was notified."""

    runbook: str
    profile: str
    status: Status
    headline: str
    results: list[CheckResult]
    severity: Severity | None  # classified once, for the headline and the notification
    duration_s: float
    finished_at: datetime  # naive UTC
    notebook_path: Path | None = None
    html_path: Path | None = None
    run_id: str = ""
    notices: list[str] = field(default_factory=list)  # what the notifications did

    @property
    def attention(self) -> list[CheckResult]:
        """The results that are not OK, worst first as recorded."""
        return [result for result in self.results if result.status is not Status.OK]

    @property
    def exit_code(self) -> int:
        return int(self.status)

    def summary(self, report: str | None) -> RunSummary:
        """What the exporters read; `report` is where the HTML report is, as shown to a
        person (None when the run produced no notebook)."""
        return RunSummary(
            self.runbook,
            self.profile,
            self.status,
            self.headline,
            self.results,
            self.duration_s,
            self.finished_at,
            report,
            self.notices,
        )


def recorded_results(nb: nbformat.NotebookNode) -> list[CheckResult] | None:
    """The results the runbook glued with scrapbook, or None if it recorded nothing."""
    import scrapbook

    scraps = scrapbook.models.Notebook(nb).scraps
    if RESULTS_SCRAP not in scraps:
        return None
    return [CheckResult.from_record(record) for record in scraps[RESULTS_SCRAP].data]


def unexecuted_cells(nb: nbformat.NotebookNode) -> list[int]:
    """Code cells that never ran: after `sys.exit()` papermill stops without an error."""
    return [
        index
        for index, cell in enumerate(nb.cells)
        if cell.cell_type == "code" and cell.source.strip() and cell.get("execution_count") is None
    ]


def _judge_run(nb: nbformat.NotebookNode | None, failure: str) -> list[CheckResult]:
    """The recorded results, plus an UNKNOWN `run` result for whatever went wrong."""
    results: list[CheckResult] = []
    if nb is not None:
        try:
            results = recorded_results(nb) or []
        except (KeyError, TypeError, ValueError) as exc:
            failure = (
                failure or f"the recorded results are unreadable ({type(exc).__name__}: {exc})"
            )
        skipped = unexecuted_cells(nb)
        if not failure and skipped:
            failure = f"the run stopped early: {len(skipped)} cell(s) never ran"
    if not failure and not results:
        failure = "the runbook recorded no results"
    if failure:
        results.append(CheckResult("run", Status.UNKNOWN, summary=failure))
    # The kernel scrubs what it knows; the runner also knows the profile's secrets.
    return [replace(result, summary=scrub(result.summary)) for result in results]


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
    refuse_unless_applies(runbook, notebook, profile)
    reports = paths.reports_dir()
    run_id = uuid.uuid4().hex[:12]
    started = utc_now()
    clock = time.monotonic()
    kernel_env = {"OPSLIB_RUN_ID": run_id, "OPSLIB_RUN_BY": by, "OPSLIB_REPORTS_DIR": str(reports)}
    # The kernel boots while the parameters are checked; bad input only costs its shutdown.
    with _stop_on_signals(), KernelSession(paths.project_root(), kernel_env) as kernel:
        # The notebook gets the profile by name or absolute path, never anything resolved.
        parameters = {
            "profile": profile.reference,
            **parse_overrides(runbook, overrides or [], declared_parameters(notebook)),
        }
        lock_wait_s = total_timeout_s if wait else 0.0
        with overlap_lock(reports / ".locks", runbook, profile.name, wait_s=lock_wait_s):
            # The second core prepares the report machinery while the kernel runs.
            warm_up = threading.Thread(target=_prepare_reporting, daemon=True)
            warm_up.start()
            nb, failure = execute(kernel, notebook, parameters, cell_timeout_s, total_timeout_s)
            kernel.release()
            warm_up.join()
            facts = RunFacts(
                runbook, profile.name, run_id, started, clock, by, parameters, profile.severity
            )
            outcome = _archive(facts, nb, failure, reports)
    outcome.notices = _notify(profile, outcome, started)
    from opslib.archive.index import write_index

    try:
        write_index()
    except Exception as exc:  # noqa: BLE001 - the run is archived; the index is rebuilt next time
        outcome.notices.append(scrub(f"index not rewritten: {type(exc).__name__}: {exc}"))
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
    severity_rules: dict[str, list[str]]


def _archive(
    facts: RunFacts, nb: nbformat.NotebookNode | None, failure: str, reports: Path
) -> RunOutcome:
    """Write the notebook and HTML (temp name, then linked into place) and the ledger row."""
    from opslib.archive.html import Banner, render_html
    from opslib.archive.ledger import Ledger, RunRecord
    from opslib.archive.reports import report_stem, write_report

    results = _judge_run(nb, failure)
    status = Status.worst([r.status for r in results])
    headline = _headline(results)
    severity = classify(results, facts.severity_rules)
    if severity is not None:
        headline += f"; {severity}"
    context = RunContext.current(facts.runbook, facts.profile)
    public_parameters = redact_parameters(facts.parameters)
    sha = git_sha()
    duration_s = time.monotonic() - facts.clock
    outcome = RunOutcome(
        facts.runbook,
        facts.profile,
        status,
        headline,
        results,
        severity,
        duration_s,
        facts.started + timedelta(seconds=duration_s),
        run_id=facts.run_id,
    )
    if nb is not None:
        banner = Banner(
            status=status.name,
            runbook=facts.runbook,
            profile=facts.profile,
            headline=headline,
            attention=[r.to_record() for r in outcome.attention],
            started=facts.started.strftime("%Y-%m-%d %H:%M:%S"),
            duration_s=duration_s,
            run_id=facts.run_id,
            who=context.os_user + (f" (by {facts.by})" if facts.by else ""),
            host=context.host,
            git_sha=sha,
            parameters=public_parameters,
        )
        nb = nbformat.from_dict(scrub_values(nb))
        outcome.notebook_path, outcome.html_path = write_report(
            reports,
            report_stem(facts.runbook, facts.profile, facts.started),
            facts.run_id,
            nbformat.writes(nb),
            scrub(render_html(nb, banner)),
        )
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


def _headline(results: list[CheckResult]) -> str:
    """How many checks need attention; when some were CRITICAL and others could not be
    measured, how many of each, so the UNKNOWNs are not hidden behind the CRITICAL."""
    attention = [r for r in results if r.status is not Status.OK]
    if not attention:
        return f"{len(results)} check(s), all OK"
    headline = f"{len(attention)} of {len(results)} check(s) need attention"
    kinds = {status: sum(r.status is status for r in attention) for status in Status}
    if kinds[Status.CRITICAL] and kinds[Status.UNKNOWN]:
        headline += f" ({kinds[Status.CRITICAL]} CRITICAL, {kinds[Status.UNKNOWN]} UNKNOWN)"
    return headline


def _notify(profile: Profile, outcome: RunOutcome, now: datetime) -> list[str]:
    """Send what changed; a failure here is reported, never the run's status. A profile
    without `notify` sends nothing and never loads the notification machinery."""
    if profile.notify is None:
        return []
    from opslib.alerting.notify import after_run

    report = str(outcome.html_path) if outcome.html_path else "(no report)"
    try:
        return after_run(
            profile,
            outcome.runbook,
            outcome.run_id,
            outcome.results,
            outcome.severity,
            report,
            now,
        )
    except Exception as exc:  # noqa: BLE001 - the run is archived; say why nothing was sent
        return [scrub(f"notifications not processed: {type(exc).__name__}: {exc}")]


def _prepare_reporting() -> None:
    """Import and load what archiving needs (nbconvert, its template, scrapbook, the
    ledger's SQLAlchemy)."""
    import scrapbook.models  # noqa: F401

    import opslib.archive.ledger  # noqa: F401
    from opslib.archive.html import prepare_exporter

    prepare_exporter()


def _relative(path: Path | None, base: Path) -> str | None:
    return None if path is None else str(path.relative_to(base))
