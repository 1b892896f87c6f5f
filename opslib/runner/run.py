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
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import nbformat

from opslib import paths
from opslib.alerting.severity import classify
from opslib.checks import CheckResult
from opslib.clock import Deadline, utc_now
from opslib.context import RunContext, git_sha
from opslib.errors import OpslibError
from opslib.notebooks import (
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
from opslib.runner.outcome import RunOutcome, headline, judge_run
from opslib.status import Status

if TYPE_CHECKING:
    from opslib.archive.ledger import Ledger, RunRecord

# what archiving (the HTML, the ledger row) is left of a run's budget: its cells stop
# this long before the deadline, a tenth of the budget for a short one
_ARCHIVE_RESERVE_S = 5.0

# papermill and nbclient log cell errors and timeouts; the run's outcome reports them
# once, in the status line and the report, so they are not printed twice.
logging.getLogger("papermill").addHandler(logging.NullHandler())


class Terminated(OpslibError):
    """The run was told to stop (SIGTERM from cron or Kubernetes, Ctrl-C)."""


@dataclass
class _SignalGuard:
    """SIGTERM and SIGINT stop a run while its cells execute (raising `Terminated`, so the
    stopped run is still archived as UNKNOWN); once archiving begins they are only noted,
    so the result already measured is written and printed instead of lost."""

    deferred: bool = False
    received: str = ""

    def __call__(self, signum: int, _frame: object) -> None:
        name = signal.Signals(signum).name
        if not self.deferred:
            raise Terminated(f"terminated by {name}")
        self.received = name


@contextlib.contextmanager
def _guard_signals() -> Iterator[_SignalGuard]:
    guard = _SignalGuard()
    previous = {sig: signal.signal(sig, guard) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield guard
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run(
    runbook: str,
    profile_name: str | None = None,
    overrides: list[str] | None = None,
    *,
    by: str = "",
    wait: bool = False,
    cell_timeout_s: float = DEFAULT_CELL_TIMEOUT_S,
    total_timeout_s: float = DEFAULT_TOTAL_TIMEOUT_S,
    deadline: Deadline | None = None,
) -> RunOutcome:
    """Validate everything, then execute and archive one run by `deadline` (default:
    `total_timeout_s` from now), waiting for a queued run and for the ledger included.
    User errors raise `OpslibError` before anything is written to the archive."""
    deadline = deadline or Deadline.after(total_timeout_s)
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
    with _guard_signals() as signals, KernelSession(paths.project_root(), kernel_env) as kernel:
        # The notebook gets the profile by name or absolute path, never anything resolved.
        parameters = {
            "profile": profile.reference,
            **parse_overrides(runbook, overrides or [], declared_parameters(notebook)),
        }
        reserve_s = min(_ARCHIVE_RESERVE_S, total_timeout_s / 10)
        # a queued run starts only with time left for its cells and its report
        lock_wait_s = max(0.0, deadline.left() - 2 * reserve_s) if wait else 0.0
        with overlap_lock(reports / ".locks", runbook, profile.name, wait_s=lock_wait_s):
            # The second core prepares the report machinery while the kernel runs.
            warm_up = threading.Thread(target=_prepare_reporting, daemon=True)
            warm_up.start()
            cells_deadline = Deadline(deadline.at - reserve_s)
            nb, failure = execute(
                kernel, notebook, parameters, cell_timeout_s, cells_deadline, total_timeout_s
            )
            signals.deferred = True
            kernel.release()
            warm_up.join()
            facts = RunFacts(
                runbook,
                profile.name,
                run_id,
                started,
                clock,
                by,
                redact_parameters(parameters),
                profile.severity,
                RunContext.current(runbook, profile.name),
                git_sha(),
            )
            outcome, ledger = _archive(facts, nb, failure, reports, deadline)
    if signals.received:
        outcome.notices.append(f"{signals.received} arrived while archiving; the run was kept")
    outcome.notices += _notify(profile, outcome, started, ledger)
    if ledger is not None:
        from opslib.archive.index import write_index

        try:
            write_index(ledger)
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
    parameters: dict[str, Any]  # as the archive shows them: secret-looking ones masked
    severity_rules: dict[str, list[str]]
    context: RunContext
    git_sha: str | None


def _archive(
    facts: RunFacts,
    nb: nbformat.NotebookNode | None,
    failure: str,
    reports: Path,
    deadline: Deadline,
) -> tuple[RunOutcome, Ledger | None]:
    """The run's outcome, archived: the notebook and HTML, then the ledger row (waiting
    for the ledger no longer than the run's deadline allows). Whatever stops the archive
    (a full disk, a read-only folder, a corrupt, locked or unreachable ledger) becomes an
    UNKNOWN `archive` result of the outcome instead of an error, so the status that was
    measured still reaches the monitoring system; the ledger is None then."""
    from opslib.archive.ledger import Ledger

    outcome = _outcome(facts, judge_run(nb, failure))
    if nb is not None:
        try:
            outcome.notebook_path, outcome.html_path = _write_report(facts, nb, outcome, reports)
        except Exception as exc:  # noqa: BLE001 - the ledger still records the run, and why
            outcome = _unarchived(facts, outcome, f"the report was not archived: {_why(exc)}")
    try:
        ledger = Ledger(timeout_s=deadline.left(floor=1.0))
        ledger.record_run(_ledger_row(facts, outcome, reports), outcome.results)
    except Exception as exc:  # noqa: BLE001 - every way archiving fails is reported in the outcome
        return _unarchived(facts, outcome, f"the run was not archived: {_why(exc)}"), None
    return outcome, ledger


def _unarchived(facts: RunFacts, outcome: RunOutcome, why: str) -> RunOutcome:
    """`outcome` with an UNKNOWN `archive` result saying what was not kept, also in the
    headline: the one line a monitoring system shows."""
    results = [*outcome.results, CheckResult("archive", Status.UNKNOWN, summary=why)]
    unarchived = _outcome(facts, results)
    return replace(
        unarchived,
        headline=f"{unarchived.headline}; {why}",
        notebook_path=outcome.notebook_path,
        html_path=outcome.html_path,
    )


def _outcome(facts: RunFacts, results: list[CheckResult]) -> RunOutcome:
    severity = classify(results, facts.severity_rules)
    duration_s = time.monotonic() - facts.clock
    return RunOutcome(
        facts.runbook,
        facts.profile,
        Status.worst([r.status for r in results]),
        headline(results) + (f"; {severity}" if severity is not None else ""),
        results,
        severity,
        duration_s,
        facts.started + timedelta(seconds=duration_s),
        run_id=facts.run_id,
    )


def _write_report(
    facts: RunFacts, nb: nbformat.NotebookNode, outcome: RunOutcome, reports: Path
) -> tuple[Path, Path]:
    from opslib.archive.html import Banner, render_html
    from opslib.archive.reports import report_stem, write_report

    context = facts.context
    banner = Banner(
        status=outcome.status.name,
        runbook=facts.runbook,
        profile=facts.profile,
        headline=outcome.headline,
        attention=[r.to_record() for r in outcome.attention],
        started=facts.started.strftime("%Y-%m-%d %H:%M:%S"),
        duration_s=outcome.duration_s,
        run_id=facts.run_id,
        who=context.os_user + (f" (by {facts.by})" if facts.by else ""),
        host=context.host,
        git_sha=facts.git_sha,
        parameters=facts.parameters,
    )
    nb = nbformat.from_dict(scrub_values(nb))
    return write_report(
        reports,
        report_stem(facts.runbook, facts.profile, facts.started),
        facts.run_id,
        nbformat.writes(nb),
        scrub(render_html(nb, banner)),
    )


def _ledger_row(facts: RunFacts, outcome: RunOutcome, reports: Path) -> RunRecord:
    from opslib.archive.ledger import RunRecord

    context = facts.context
    return RunRecord(
        run_id=facts.run_id,
        runbook=facts.runbook,
        profile=facts.profile,
        started_at=facts.started,
        duration_s=outcome.duration_s,
        status=outcome.status.name,
        exit_code=outcome.exit_code,
        summary=outcome.headline,
        notebook_path=_relative(outcome.notebook_path, reports),
        html_path=_relative(outcome.html_path, reports),
        git_sha=facts.git_sha,
        os_user=context.os_user,
        run_by=facts.by,
        host=context.host,
        parameters=facts.parameters,
    )


def _why(exc: Exception) -> str:
    """Why the archive refused, in words a person can act on."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror + (f" ({exc.filename})" if exc.filename else "")
    cause = getattr(exc, "orig", None) or exc
    first_line = (str(cause).strip().splitlines() or [""])[0]
    return scrub(f"{type(cause).__name__}: {first_line}")


def _notify(
    profile: Profile, outcome: RunOutcome, now: datetime, ledger: Ledger | None
) -> list[str]:
    """Send what changed; a failure here is reported, never the run's status. A profile
    without `notify` sends nothing and never loads the notification machinery; without
    a ledger (the archive failed) there is no alert state to compare with."""
    if profile.notify is None:
        return []
    if ledger is None:
        return ["notifications not processed: the alert state lives in the ledger, which failed"]
    from opslib.alerting.notify import after_run

    report = str(outcome.html_path) if outcome.html_path else "(no report)"
    try:
        return after_run(
            ledger,
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
