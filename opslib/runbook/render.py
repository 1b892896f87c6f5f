"""HTML fragments a notebook shows: status badges, result lines, tables, plans.

Shared by the runbook API and the report so a status looks the same everywhere. Plans
and outcomes are plain values of `opslib.actions`; `teach_ipython` tells the notebook
how they look, so the gate below knows nothing of HTML.
"""

from __future__ import annotations

from html import escape
from typing import Any

import pandas as pd
from IPython import get_ipython

from opslib.actions import Outcome, Plan
from opslib.checks import CheckResult, format_value
from opslib.notebooks import NOT_APPLICABLE_MIME
from opslib.status import Status

MAX_TABLE_ROWS = 50


def badge(status: Status, text: str = "") -> str:
    """A status-coloured label; `text` replaces the status name (a service state)."""
    return (
        f'<span style="background:{status.colour};color:#fff;border-radius:3px;padding:1px 6px;'
        f'font-weight:600;font-family:sans-serif;font-size:85%">{text or status.name}</span>'
    )


def result_line(result: CheckResult) -> str:
    value = format_value(result.value, result.unit)
    limits = ", ".join(
        f"{kind} {spec}"
        for kind, spec in (("warn", result.warning), ("crit", result.critical))
        if spec
    )
    extra = f' <span style="color:#666">({escape(limits)})</span>' if limits else ""
    return (
        f"<p>{badge(result.status)} <b>{escape(result.name)}</b> = {escape(value)}{extra}"
        f" — {escape(result.summary)}</p>"
    )


def table(frame: pd.DataFrame | None) -> str:
    if frame is None or frame.empty:
        return ""
    numbered_rows = isinstance(frame.index, pd.RangeIndex)
    shown = frame.head(MAX_TABLE_ROWS).to_html(
        border=0, classes="dataframe opslib-table", index=not numbered_rows
    )
    more = len(frame) - MAX_TABLE_ROWS
    return shown + (f"<p><i>… {more} more row(s)</i></p>" if more > 0 else "")


def results_table(results: list[CheckResult]) -> str:
    """Every check of a run, one row each: the table a reviewer reads first."""
    cell = '<td style="text-align:left">'
    rows = "".join(
        f"<tr>{cell}{badge(r.status)}</td>{cell}{escape(r.name)}</td>"
        f"{cell}{escape(format_value(r.value, r.unit))}</td>"
        f"{cell}{escape(r.warning or '')}</td>{cell}{escape(r.critical or '')}</td>"
        f"{cell}{escape(r.summary)}</td></tr>"
        for r in results
    )
    headings = "".join(
        f'<th style="text-align:left">{name}</th>'
        for name in ("status", "check", "value", "warning", "critical", "summary")
    )
    return (
        f'<table class="dataframe opslib-checks"><thead><tr>{headings}</tr></thead>'
        f"<tbody>{rows}</tbody></table>"
    )


def plan(shown: Plan) -> str:
    """A plan as the notebook shows it: what, on what, its hash and the rows it changes."""
    heading = (
        f"<p><b>Plan {escape(shown.action)}</b> on {escape(shown.target)}: {escape(shown.summary)}"
    )
    if shown.empty:
        return heading + "</p>"
    rows = shown.context if shown.context is not None else pd.DataFrame(list(shown.changes))
    steps = "".join(plan(part) for part in shown.parts)
    return f"{heading} — plan hash <code>{shown.hash}</code></p>{table(rows)}{steps}"


def teach_ipython() -> None:
    """Register how plans and outcomes display in this kernel (nothing outside one)."""
    shell = get_ipython()
    if shell is None:
        return
    formatter = shell.display_formatter.formatters["text/html"]
    formatter.for_type(Plan, plan)
    formatter.for_type(Outcome, lambda outcome: result_line(outcome.result))


def not_applicable(step: str, why: str) -> dict[str, Any]:
    """The display of a step that does not apply: a line in JupyterLab, a marker for the
    report."""
    return {"text/plain": f"{step}: not applicable ({why})", NOT_APPLICABLE_MIME: {"step": step}}


def not_applicable_line(profile: str, steps: dict[str, str]) -> str:
    """Every step that did not apply, in one short line, grouped by why."""
    by_reason: dict[str, list[str]] = {}
    for step, why in steps.items():
        by_reason.setdefault(why, []).append(step)
    groups = "; ".join(f"{', '.join(names)} ({why})" for why, names in by_reason.items())
    return (
        f'<p style="color:#666">Not applicable to profile {escape(profile)}: {escape(groups)}</p>'
    )
