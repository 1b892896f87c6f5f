"""What a run came to: its results (the recorded ones, plus an UNKNOWN `run` result for
whatever stopped it), their worst status and the headline a person reads first."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

import nbformat

from opslib.alerting.severity import Severity
from opslib.archive.exporters import RunSummary
from opslib.checks import CheckResult
from opslib.notebooks import RESULTS_SCRAP
from opslib.profiles.secrets import scrub
from opslib.status import Status


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


def judge_run(nb: nbformat.NotebookNode | None, failure: str) -> list[CheckResult]:
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


def headline(results: list[CheckResult]) -> str:
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
