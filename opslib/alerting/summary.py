"""Period summaries: what ran on a profile over the last day or week, sent whether
anything changed or not (a success message is news too, and so is silence).

Everything comes from the ledger, which holds only scrubbed text: per runbook the runs,
their worst and their latest state; the newest value of each cost measure in the period
(a check whose name speaks of cost or budget, or whose unit is money); and each fix
applied through the plan gate (its audit row). Plain text with short lines, so it reads
the same in a mail client and in a Slack-style webhook.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa

from opslib.archive.ledger import Ledger
from opslib.archive.tables import audit, check_results, runs
from opslib.profiles.secrets import scrub
from opslib.status import Status

PERIODS = {"daily": timedelta(days=1), "weekly": timedelta(days=7)}
MONEY_UNITS = ("USD", "EUR", "GBP", "$")
COST_WORDS = ("cost", "budget", "spend")
SUMMARY_CHARS = 140  # of a run's or a fix's summary line, so a message stays readable


@dataclass(frozen=True)
class Summary:
    """One period's summary of one profile, ready to send."""

    profile: str
    period: str
    since: datetime
    until: datetime
    runs: list[dict]
    costs: list[dict]
    fixes: list[dict]

    @property
    def worst(self) -> Status:
        return Status.worst([Status[run["status"]] for run in self.runs])

    def subject(self) -> str:
        what = (
            f"{len(self.runs)} run(s), worst {self.worst.name}, {len(self.fixes)} fix(es)"
            if self.runs
            else "NO runs"
        )
        return scrub(f"[opslib] {self.period} summary of {self.profile}: {what}")

    def body(self) -> str:
        span = f"{self.since:%Y-%m-%d %H:%M} to {self.until:%Y-%m-%d %H:%M} UTC"
        lines = [f"{self.period.capitalize()} summary of {self.profile}, {span}.", ""]
        if not self.runs:
            lines += [
                "No runbook ran on this profile in this period. If runs were scheduled, "
                "they did not start or were not recorded: check the crontab and its logs.",
            ]
        else:
            lines += [f"Runs ({len(self.runs)}), per runbook:", *self._run_lines()]
        lines += ["", "Costs (newest value measured in the period):"]
        lines += [_cost_line(row) for row in self.costs] or ["- none measured"]
        lines += ["", f"Fixes applied ({len(self.fixes)}):"]
        lines += [_fix_line(row) for row in self.fixes] or ["- none"]
        lines += ["", "Sent by `opslib notify summary` whether or not anything changed."]
        return scrub("\n".join(lines))

    def _run_lines(self) -> list[str]:
        by_runbook: dict[str, list[dict]] = {}
        for run in self.runs:  # oldest first: the last one is the latest
            by_runbook.setdefault(run["runbook"], []).append(run)
        lines = []
        for runbook, group in sorted(by_runbook.items()):
            counts = Counter(run["status"] for run in group)
            worst = Status.worst([Status[status] for status in counts])
            tally = ", ".join(
                f"{counts[status.name]} {status.name}" for status in Status if counts[status.name]
            )
            latest = group[-1]
            lines.append(
                f"- {runbook}: {len(group)} run(s) ({tally}), worst {worst.name}; latest "
                f"{latest['status']} at {latest['started_at']:%Y-%m-%d %H:%M}: "
                f"{_short(latest['summary'])}"
            )
        return lines


def _short(text: str | None) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= SUMMARY_CHARS else text[: SUMMARY_CHARS - 3] + "..."


def _number(value: float) -> str:
    return f"{value:,.2f}".rstrip("0").rstrip(".") if value % 1 else f"{value:,.0f}"


def _cost_line(row: dict) -> str:
    unit = row["unit"] or ""
    value = f"{_number(row['value'])} {unit}".strip()
    return (
        f"- {row['name']}: {value} ({row['status']}, {row['runbook']} "
        f"at {row['started_at']:%Y-%m-%d %H:%M})"
    )


def _fix_line(row: dict) -> str:
    who = row["run_by"] or row["os_user"]
    counts = (
        f", {row['before_count']} -> {row['after_count']}"
        if row["before_count"] is not None or row["after_count"] is not None
        else ""
    )
    error = f" ({_short(row['error'])})" if row["error"] else ""
    return (
        f"- {row['at']:%Y-%m-%d %H:%M} {row['action']} by {who} in {row['runbook']}: "
        f"{row['outcome']}{error}{counts} - {_short(row['summary'])}"
    )


def _is_cost() -> sa.ColumnElement[bool]:
    name = sa.func.lower(check_results.c.name)
    return sa.or_(
        *(name.contains(word, autoescape=True) for word in COST_WORDS),
        check_results.c.unit.in_(MONEY_UNITS),
    )


def build(ledger: Ledger | None, profile: str, period: str, now: datetime) -> Summary:
    """The summary of `profile` for the `period` (daily, weekly) ending at `now`; with no
    ledger (nothing ever ran) it says there were no runs."""
    since = now - PERIODS[period]
    if ledger is None:
        return Summary(profile, period, since, now, [], [], [])
    in_period = (runs.c.profile == profile, runs.c.started_at >= since, runs.c.started_at < now)
    with ledger.engine.connect() as connection:
        found = connection.execute(
            sa.select(runs.c.runbook, runs.c.status, runs.c.started_at, runs.c.summary)
            .where(*in_period)
            .order_by(runs.c.started_at)
        ).mappings()
        period_runs = [dict(row) for row in found]
        measured = connection.execute(
            sa.select(
                check_results.c.name, check_results.c.value, check_results.c.unit,
                check_results.c.status, runs.c.runbook, runs.c.started_at,
            )
            .join(runs, runs.c.run_id == check_results.c.run_id)
            .where(*in_period, check_results.c.value.is_not(None), _is_cost())
            .order_by(runs.c.started_at.desc(), check_results.c.id)
        ).mappings()  # fmt: skip
        newest: dict[str, dict] = {}
        for row in measured:
            newest.setdefault(row["name"], dict(row))
        fixes = connection.execute(
            sa.select(audit)
            .where(audit.c.profile == profile, audit.c.at >= since, audit.c.at < now)
            .order_by(audit.c.at, audit.c.id)
        ).mappings()
        fix_rows = [dict(row) for row in fixes]
    costs = [newest[name] for name in sorted(newest)]
    return Summary(profile, period, since, now, period_runs, costs, fix_rows)
