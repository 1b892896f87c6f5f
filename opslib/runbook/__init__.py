"""The API a runbook notebook calls: open a profile, evaluate checks, act, record.

One code cell per step: `rb.evaluate("stuck_jobs")` runs the probe the catalogue names,
judges it with the profile's thresholds and shows the result and its table. A probe that
fails becomes UNKNOWN or CRITICAL with its reason: one broken step never hides the rest.
A step the profile has nothing for is not applicable: it leaves no result, the report
drops it with its explanation, and `finish()` names all of them in one line.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from html import escape
from typing import Any

import pandas as pd
import scrapbook
from IPython import get_ipython
from IPython.display import HTML, display

from opslib import paths
from opslib.actions import Action, Outcome, execute
from opslib.alerting.severity import classify
from opslib.checks import CheckResult, judge
from opslib.checks.catalogue import CheckSpec, catalogue
from opslib.context import INTERACTIVE, RunContext
from opslib.errors import OpslibError
from opslib.notebooks import RESULTS_SCRAP, TRACEBACK_MIME
from opslib.probes import (
    History,
    Metric,
    NoHistory,
    NotApplicable,
    ProbeError,
    db,
    sqlite_locks,
)
from opslib.profiles import Profile, load_profile
from opslib.profiles.secrets import scrub
from opslib.runbook import render as show
from opslib.status import Status


@dataclass
class Finding:
    """What one `evaluate` produced; shows each status line followed by its table."""

    check: str
    results: list[CheckResult] = field(default_factory=list)
    tables: list[pd.DataFrame | None] = field(default_factory=list)
    skipped: str = ""

    @property
    def status(self) -> Status:
        """The worst status among this step's results (OK when skipped)."""
        return Status.worst([result.status for result in self.results])

    @property
    def table(self) -> pd.DataFrame | None:
        """The first result's table (a single-metric check has only that one)."""
        return self.tables[0] if self.tables else None

    def _repr_mimebundle_(self, **_kwargs: Any) -> dict[str, Any] | None:
        """A step that does not apply is a marker the report drops, not a paragraph."""
        if not self.skipped:
            return None
        return show.not_applicable(self.check, self.skipped)

    def _repr_html_(self) -> str | None:
        if self.skipped:  # None: JupyterLab shows the bundle's plain line instead
            return None
        return "".join(
            show.result_line(result) + show.table(table)
            for result, table in zip(
                self.results, self.tables or [None] * len(self.results), strict=True
            )
        )

    def status_only(self) -> Finding | HTML:
        """The status lines without the tables, for a step that charts the table instead."""
        return self if self.skipped else HTML("".join(map(show.result_line, self.results)))


class Runbook:
    """One execution of a runbook against one profile, collecting every check result."""

    def __init__(self, name: str, profile: Profile) -> None:
        self.name = name
        self.profile = profile
        self.context = RunContext.current(name, profile.name)
        show.teach_ipython()
        self.results: list[CheckResult] = []
        self.not_applicable: dict[str, str] = {}  # step -> why it does not apply here
        # databases that did not answer, remembered for an unattended run only: a person
        # re-running a cell after releasing a lock must get a fresh answer
        self.memory = db.RunMemory(
            unreachable={} if self.context.run_id != INTERACTIVE else None,
            explain=sqlite_locks.explain_locked,
        )

    @classmethod
    def open(cls, name: str, profile: str = "") -> Runbook:
        """Load the profile (empty: $OPSLIB_PROFILE, else `demo`) and show what it targets.
        What the runbook writes from here on (backups, packages) is owner-only, also when
        it runs in JupyterLab rather than under `opslib run`."""
        paths.keep_new_files_private()
        runbook = cls(name, load_profile(profile or None))
        display(HTML(runbook._header()))
        return runbook

    def _header(self) -> str:
        profile = self.profile
        items = "".join(f"<li>{escape(target)}</li>" for target in profile.describe_targets())
        return (
            f"<p><b>{escape(self.name)}</b> on profile <b>{escape(profile.name)}</b> — "
            f"{escape(profile.description)}</p><ul>{items}</ul>"
        )

    def evaluate(self, check: str, **probe_args: Any) -> Finding:
        """Measure and judge one catalogue check; skipped when the profile lacks its target."""
        spec = catalogue()[check]
        settings = self.profile.check_settings(check)
        if not settings.enabled:
            return self._skip(check, f"disabled in {self.profile.source}")
        unmet = [need for need in spec.profile_needs if not self.profile.provides(need)]
        if unmet:
            return self._skip(check, f"no {unmet[0]}")
        warning, critical = spec.thresholds(settings.warning, settings.critical)
        try:
            metrics = self.measure(spec, **probe_args)
        except NotApplicable as exc:
            return self._skip(check, exc.reason)
        except ProbeError as exc:
            failure = self._failure(spec, exc.status, exc.reason, warning, critical)
            return self._keep(Finding(check, [failure]))
        except (OpslibError, OSError) as exc:
            failure = self._failure(spec, Status.UNKNOWN, str(exc), warning, critical)
            return self._keep(Finding(check, [failure]))
        except Exception as exc:  # noqa: BLE001 - a probe's bug must not hide the steps after it
            failure = self._failure(spec, Status.UNKNOWN, self._bug(exc), warning, critical)
            return self._keep(Finding(check, [failure]))
        results = [self._judge(spec, metric) for metric in metrics]
        return self._keep(Finding(check, results, [metric.table for metric in metrics]))

    def call(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Any other reading a cell makes (a chart's data): `function(profile, ...)`'s
        value; on an error, one line with the reason (the probe's status: a missing
        database file is CRITICAL, anything else UNKNOWN) and None, so the cells after it
        still run and a chart says it has no data."""
        name = getattr(function, "__name__", "call")
        try:
            with db.remembering(self.memory):
                return function(self.profile, *args, **kwargs)
        except NotApplicable as exc:
            display(self._skip(name, exc.reason))
        except (ProbeError, OpslibError, OSError) as exc:
            self._fail(name, getattr(exc, "reason", str(exc)), getattr(exc, "status", None))
        except Exception as exc:  # noqa: BLE001 - a bug here must not stop the report
            self._fail(name, self._bug(exc))
        return None

    def _fail(self, step: str, reason: str, status: Status | None = None) -> None:
        failure = CheckResult(step, status or Status.UNKNOWN, summary=scrub(reason))
        display(HTML(show.result_line(failure)))
        self.results.append(failure)
        self._record()

    def _bug(self, exc: Exception) -> str:
        """The one line a report shows for an error nobody foresaw. Its traceback is shown
        at once (a cell that raises later stops the runbook before `finish`), and the
        report folds it away with the others at its end."""
        trace = scrub("".join(traceback.format_exception(exc)))
        display({"text/plain": trace, TRACEBACK_MIME: {"traceback": trace}}, raw=True)
        return f"failed ({type(exc).__name__}: {exc}); please report it with the details below"

    def _skip(self, step: str, why: str) -> Finding:
        self.not_applicable[step] = why
        return Finding(step, skipped=why)

    def measure(self, spec: CheckSpec, **probe_args: Any) -> list[Metric]:
        """Call the check's probe with the profile and what else it needs from the run
        (`history`), remembering for the whole run which databases did not answer."""
        resources = {name: getattr(self, name) for name in spec.run_resources}
        with db.remembering(self.memory):
            measured = spec.probe_function()(self.profile, **resources, **probe_args)
        return measured if isinstance(measured, list) else [measured]

    @cached_property
    def history(self) -> History:
        """The ledger of earlier runs, for the probes and fixes that read it (empty until
        a first run is archived, and then read as it was at the first use)."""
        from opslib.archive.ledger import Ledger, ledger_exists

        return Ledger() if ledger_exists() else NoHistory()

    def _judge(self, spec: CheckSpec, metric: Metric) -> CheckResult:
        """Judge one metric with the thresholds for its label, else for the check."""
        settings = self.profile.check_settings(spec.name, metric.label)
        warning, critical = spec.thresholds(settings.warning, settings.critical)
        return CheckResult(
            name=f"{spec.name}[{metric.label}]" if metric.label else spec.name,
            status=metric.verdict or judge(metric.value, warning, critical),
            value=None if metric.value is None else float(metric.value),
            unit=spec.unit,
            warning=str(warning) if warning else None,
            critical=str(critical) if critical else None,
            summary=scrub(metric.summary),
        )

    def _failure(
        self, spec: CheckSpec, status: Status, reason: str, warning: Any, critical: Any
    ) -> CheckResult:
        return CheckResult(
            name=spec.name,
            status=status,
            unit=spec.unit,
            warning=str(warning) if warning else None,
            critical=str(critical) if critical else None,
            summary=scrub(reason),
        )

    def _keep(self, finding: Finding) -> Finding:
        self.results.extend(finding.results)
        self._record()
        return finding

    def _record(self) -> None:
        """Record every result so far: if a later cell dies, the runner still reports
        what was found before it (the last recording wins when read back)."""
        if get_ipython() is not None:  # outside a kernel (a script, the bench) there is no reader
            scrapbook.glue(RESULTS_SCRAP, [r.to_record() for r in self.results], encoder="json")

    def act(self, action: Action, *, apply: bool = False, approve: str = "") -> Outcome:
        """Plan the action, show the plan, and apply it only if the run asks for it."""
        from opslib.archive.ledger import Ledger  # SQLAlchemy only once a fix is planned

        # a fix asks its database afresh: it is most needed right after a lock has cleared
        fresh = db.RunMemory(unreachable=None, explain=self.memory.explain)
        with db.remembering(fresh):
            outcome = execute(action, self.context, Ledger, apply=apply, approve=approve)
        if outcome.mode == "not-applicable":
            display(self._skip(outcome.result.name, outcome.plan.summary))
            return outcome
        display(outcome.plan)
        self.results.append(outcome.result)
        self._record()
        return outcome

    @property
    def status(self) -> Status:
        return Status.worst([r.status for r in self.results])

    def finish(self) -> None:
        """Show every check in one table (the results are already recorded)."""
        counts = pd.Series([r.status.name for r in self.results]).value_counts().to_dict()
        tally = ", ".join(f"{counts[s.name]} {s.name}" for s in Status if s.name in counts)
        severity = classify(self.results, self.profile.severity)
        incident = f"<br>{escape(str(severity))}" if severity else ""
        display(
            HTML(
                f"<p>Overall {show.badge(self.status)} — {len(self.results)} check(s): {tally}"
                f"{incident}</p>"
            )
        )
        display(HTML(show.results_table(self.results)))
        if self.not_applicable:
            display(HTML(show.not_applicable_line(self.profile.name, self.not_applicable)))
