"""Budget remedies: close the spending circuit breaker, start the next budget cycle
(archiving the spend of the one that ends), and the guard every resume of spending goes
through: while a budget is at or over 100 % of its allocation, a resume is refused
unless forced, and a forced plan carries the spent budgets, so its hash does."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, ClassVar

import pandas as pd
import sqlalchemy as sa

from opslib.actions import Applied, Plan
from opslib.clock import utc_now
from opslib.probes import ProbeError, db
from opslib.probes.budget import (
    BREAKER_STATES,
    Period,
    cycle_summary,
    latest_period,
    next_start,
    over_budget,
)
from opslib.probes.halt import control_table, control_value, stamp_encoding
from opslib.probes.logs import patterns_table, triage
from opslib.probes.timestamps import encoding
from opslib.profiles import Profile

CLOSED = "closed"
FAILURES = 5  # recent failures a breaker plan shows
# how far before the breaker's last change the failures that tripped it are looked for
FAILURES_BEFORE = timedelta(hours=24)
FAILURES_AT_MOST_HOURS = 8 * 24.0  # a breaker open for weeks: its last eight days of logs
AT_APPLY = "at apply"  # a moment the plan cannot fix: taken when the change is made


# ---- the resume guard -----------------------------------------------------------------


@dataclass(frozen=True)
class ResumeGuard:
    """Whether spending may resume: the budgets at or over 100 % (`over_budget`), or why
    the budget could not be read, and whether the run forces it anyway."""

    over: list[dict[str, object]]
    force: bool
    unread: str = ""

    @classmethod
    def read(cls, profile: Profile, force: bool) -> ResumeGuard:
        if not profile.provides("budget"):
            return cls([], force)
        try:
            return cls(over_budget(profile), force)
        except ProbeError as exc:
            if not force:
                raise ProbeError(
                    f"the budget must be read before spending resumes: {exc.reason}; "
                    "force=True resumes without it (the plan then says so)",
                    exc.status,
                ) from exc
            return cls([], force, exc.reason)

    @property
    def refused(self) -> bool:
        return bool(self.over) and not self.force

    @property
    def spent(self) -> str:
        return ", ".join(f"{item['category']} at {item['percent']:g}%" for item in self.over)

    def refusal(self) -> str:
        return (
            f"refused while a budget is at or over 100% of its allocation ({self.spent}): "
            "start a new cycle or raise the allocation first, or force=True to resume anyway "
            "(the plan then carries the spent budgets)"
        )

    def fact(self) -> dict[str, object]:
        """What a forced plan carries in its changes (and so in its hash)."""
        if self.unread:
            return {"budget_unread": self.unread}
        return {"over_budget": self.over} if self.over else {}

    def note(self) -> str:
        if self.unread:
            return f"; FORCED without reading the budget ({self.unread})"
        return f"; FORCED although budgets are spent: {self.spent}" if self.over else ""


def still_safe(profile: Profile, change: dict[str, Any]) -> bool:
    """At apply: a resume planned with every budget under 100 % goes ahead only if that
    still holds (a forced plan already carries the fact and goes ahead)."""
    if "over_budget" in change or "budget_unread" in change or not profile.provides("budget"):
        return True
    return not over_budget(profile)


# ---- the circuit breaker --------------------------------------------------------------


def recent_failures(
    profile: Profile, since: datetime | None, limit: int = FAILURES
) -> pd.DataFrame | None:
    """The error patterns the logs hold from a day before the breaker last changed until
    now, the latest first: what tripped it. None without logs; a reason when unreadable."""
    if not profile.provides("logs"):
        return None
    start = (since or utc_now()) - FAILURES_BEFORE
    hours = min(max((utc_now() - start) / timedelta(hours=1), 1.0), FAILURES_AT_MOST_HOURS)
    try:
        table = patterns_table(triage(profile, hours), limit=10_000)
    except (ProbeError, OSError) as exc:
        reason = getattr(exc, "reason", str(exc))
        return pd.DataFrame({"failures": [f"the logs could not be read: {reason}"]})
    latest = table.sort_values("last_seen", ascending=False).head(limit)
    return latest.drop(columns="pattern").reset_index(drop=True)


@dataclass
class ResetBreaker:
    """Close the spending circuit breaker (open or half-open), only if it still has the
    state and time the plan saw; refused while a budget is spent unless `force`."""

    profile: Profile
    needs: ClassVar[str] = "breaker"
    name: str = "reset_circuit_breaker"
    force: bool = False
    failures: int = FAILURES

    def plan(self) -> Plan:
        breaker = self.profile.budget.breaker
        with db.connect(self.profile) as connection:
            value, since = control_value(connection, breaker.table, breaker.key)
        target = f"{self.profile.database_display()} {breaker.table}.{breaker.key}"
        state = (value or CLOSED).strip().lower()
        if state not in BREAKER_STATES:
            raise ProbeError(
                f"{breaker.table}.{breaker.key} is {value!r}, not one of "
                f"{', '.join(BREAKER_STATES)}: set it by hand"
            )
        when = f" since {since:%Y-%m-%d %H:%M} UTC" if since else ""
        if state == CLOSED:
            return Plan(self.name, target, f"the circuit breaker is already closed{when}", ())
        failures = recent_failures(self.profile, since, self.failures)
        guard = ResumeGuard.read(self.profile, self.force)
        if guard.refused:
            summary = f"not closing the circuit breaker ({state}{when})"
            return Plan(self.name, target, summary, (), failures, refused=guard.refusal())
        shown = "" if failures is None else "; the latest failures in the logs below"
        change = {
            "key": breaker.key,
            "value": [value, CLOSED],
            "since": since.isoformat() if since else None,
            **guard.fact(),
        }
        summary = f"close the circuit breaker, {state}{when}{shown}{guard.note()}"
        return Plan(self.name, target, summary, (change,), failures)

    def apply(self, plan: Plan) -> Applied:
        """Inside one transaction holding the row: closed only if value and time are still
        the plan's; read again afterwards."""
        (change,) = plan.changes
        breaker = self.profile.budget.breaker
        before, after = change["value"]
        if not still_safe(self.profile, change):
            return Applied(0, 0, 0, [], [f"{change['key']}: a budget is now spent"], None)
        control = control_table(breaker.table)
        with db.change(self.profile) as connection:
            value, since = control_value(connection, breaker.table, breaker.key, lock=True)
            if value != before or (since.isoformat() if since else None) != change["since"]:
                return Applied(0, 0, 0, [], [change["key"]], None)
            stamp = stamp_encoding(connection, breaker.table).bound(utc_now())
            connection.execute(
                sa.update(control)
                .where(control.c.key == breaker.key)
                .values(value=after, updated_at=stamp)
            )
        with db.connect(self.profile) as connection:
            now_value, _ = control_value(connection, breaker.table, breaker.key)
        still_open = int((now_value or CLOSED).strip().lower() != CLOSED)
        backup = {"previous_value": before, "previous_updated_at": change["since"]}
        return Applied(1, 1, still_open, [change], [], backup, remeasured=True)


# ---- the budget cycle -----------------------------------------------------------------


def archive_table(name: str) -> sa.Table:
    """`<budget table>_cycles`: one row per category of each cycle that ended."""
    money = sa.Numeric(12, 2, asdecimal=False)
    return sa.Table(
        name,
        sa.MetaData(),
        sa.Column("cycle", sa.Text),
        sa.Column("period_start", sa.DateTime, nullable=False),
        sa.Column("period_end", sa.DateTime, nullable=False),
        sa.Column("category", sa.Text, nullable=False),
        sa.Column("allocated_usd", money),
        sa.Column("spent_usd", money),
        sa.Column("usage_pct", sa.Numeric(8, 1, asdecimal=False)),
        sa.Column("items", sa.Integer),
        sa.Column("archived_at", sa.DateTime, nullable=False),
    )


def _records(summary: pd.DataFrame) -> list[dict[str, object]]:
    frame = summary.reset_index().astype(object).where(summary.reset_index().notna(), None)
    return frame.to_dict("records")


@dataclass
class NewBudgetCycle:
    """Start the next budget period for every category (same length, same allocation
    unless `allocations` says otherwise) and archive what the ending one spent into
    `<budget table>_cycles`. Only once the current period has ended, unless `early`:
    then it ends now. `needed=False` plans nothing, for a runbook where it is asked for."""

    profile: Profile
    needs: ClassVar[str] = "budget"
    name: str = "new_budget_cycle"
    early: bool = False
    allocations: dict[str, float] = field(default_factory=dict)
    needed: bool = True

    @property
    def archive(self) -> str:
        return f"{self.profile.budget.table}_cycles"

    def _table(self) -> sa.TableClause:
        budget = self.profile.budget
        names = [budget.category, budget.allocated, budget.period_start, budget.period_end]
        return sa.table(
            budget.table, *map(sa.column, names + ([budget.cycle] if budget.cycle else []))
        )

    def _cycle_name(self, start: datetime, end: datetime) -> str | None:
        budget = self.profile.budget
        return budget.cycle_name.format(start=start, end=end) if budget.cycle else None

    def plan(self) -> Plan:
        budget, now = self.profile.budget, utc_now()
        target = f"{self.profile.database_display()} table {budget.table}"
        if not self.needed:
            return Plan(self.name, target, "no new cycle asked for (new_cycle=True asks)", ())
        with db.connect(self.profile) as connection:
            period = latest_period(connection, self.profile, now)
            later = next_start(connection, self.profile, period.start)
            if later is not None:
                return Plan(
                    self.name,
                    target,
                    f"a later cycle already begins {later:%Y-%m-%d %H:%M} UTC",
                    (),
                )
            ended = period.end <= now
            if not ended and not self.early:
                return Plan(
                    self.name,
                    target,
                    f"the current cycle runs until {period.end:%Y-%m-%d %H:%M} UTC: a new one "
                    "starts once it has ended, or now with early=True",
                    (),
                )
            summary = cycle_summary(connection, self.profile, period, min(period.end, now))
            archived = sa.inspect(connection).has_table(self.archive)
        length = period.end - period.start
        # the next period follows on, unless it would already be over (cycles were missed)
        start = period.end if ended and period.end + length > now else None
        name = self._cycle_name(start or now, (start or now) + length)
        if name is not None:
            self._refuse_taken(name)
        allocated = {**period.allocated.to_dict(), **self.allocations}
        changes = (
            {
                "archive": self.archive,
                "create_table": not archived,
                "ending": [period.start.isoformat(), period.end.isoformat()],
                "cut_end_to": AT_APPLY if not ended else None,
                "summary": _records(summary),
            },
            {
                "new_cycle": name,
                "period_start": start.isoformat() if start else AT_APPLY,
                "length_hours": length / timedelta(hours=1),
                "allocations": allocated,
            },
        )
        total = summary["spent_usd"].sum()
        how = "ending it now" if not ended else f"ended {period.end:%Y-%m-%d %H:%M} UTC"
        begins = f"{start:%Y-%m-%d %H:%M} UTC" if start else "now"
        text = (
            f"archive the cycle {period.start:%Y-%m-%d} to {period.end:%Y-%m-%d} ({how}; "
            f"${total:.2f} spent of ${summary['allocated_usd'].sum():.2f}) into {self.archive}"
            f"{' (created)' if not archived else ''}, and start {name or 'the next cycle'}: "
            f"{len(allocated)} categor(ies), ${sum(allocated.values()):.2f} in total, from "
            f"{begins} for {length / timedelta(days=1):g} day(s)"
        )
        return Plan(self.name, target, text, changes, summary)

    def _refuse_taken(self, name: str) -> None:
        budget, table = self.profile.budget, self._table()
        with db.connect(self.profile) as connection:
            taken = connection.execute(
                sa.select(sa.func.count()).select_from(table).where(table.c[budget.cycle] == name)
            ).scalar_one()
        if taken:
            raise ProbeError(
                f"{budget.table} already holds a cycle named {name!r}: set budget.cycle_name "
                "to a pattern that tells this one apart"
            )

    def apply(self, plan: Plan) -> Applied:
        """One transaction: the ending cycle must still be the plan's and no later one may
        have begun; its rows are the before-image, the archive rows are what it spent by
        now, and the new rows are counted afterwards."""
        archived, started = plan.changes
        budget, table, now = self.profile.budget, self._table(), utc_now()
        with db.change(self.profile) as connection:
            starts = encoding(connection, table, budget.period_start, "auto", "budget.period_start")
            ends = encoding(connection, table, budget.period_end, "auto", "budget.period_end")
            period = latest_period(connection, self.profile, now)
            planned = [period.start.isoformat(), period.end.isoformat()]
            if planned != archived["ending"] or next_start(connection, self.profile, period.start):
                return Applied(0, 0, 0, [], ["the cycle changed since the plan"], None)
            ending = table.c[budget.period_start] == starts.bound(period.start)
            rows = connection.execute(
                sa.select(sa.text("*")).select_from(table).where(ending).with_for_update()
            )
            before = [dict(row) for row in rows.mappings()]
            summary = cycle_summary(connection, self.profile, period, min(period.end, now))
            self._archive(connection, period, summary, now, before)
            cut = archived["cut_end_to"] == AT_APPLY and period.end > now
            if cut:
                connection.execute(
                    sa.update(table).where(ending).values({budget.period_end: ends.bound(now)})
                )
            start = (
                datetime.fromisoformat(started["period_start"])
                if started["period_start"] != AT_APPLY
                else now
            )
            end = start + timedelta(hours=started["length_hours"])
            name = self._cycle_name(start, end)
            new = [
                {
                    budget.category: category,
                    budget.allocated: amount,
                    budget.period_start: starts.bound(start),
                    budget.period_end: ends.bound(end),
                    **({budget.cycle: name} if budget.cycle else {}),
                }
                for category, amount in started["allocations"].items()
            ]
            connection.execute(sa.insert(table), new)
            found = connection.execute(
                sa.select(sa.func.count())
                .select_from(table)
                .where(table.c[budget.period_start] == starts.bound(start))
            ).scalar_one()
        done = [
            {
                **archived,
                "summary": _records(summary),
                "cut_end_to": now.isoformat() if cut else None,
            },
            {**started, "new_cycle": name, "period_start": start.isoformat()},
        ]
        backup = {"ending_rows": before, "summary": _records(summary)}
        missing = max(len(new) - found, 0)
        return Applied(len(new), len(before), missing, done, [], backup, remeasured=True)

    def _archive(
        self,
        connection: sa.Connection,
        period: Period,
        summary: pd.DataFrame,
        now: datetime,
        before: list[dict],
    ) -> None:
        budget, archive = self.profile.budget, archive_table(self.archive)
        archive.create(connection, checkfirst=True)
        cycle = before[0].get(budget.cycle) if budget.cycle and before else None
        rows = [
            {"cycle": cycle, "period_start": period.start, "period_end": min(period.end, now),
             "archived_at": now, **record}
            for record in _records(summary)
        ]  # fmt: skip
        connection.execute(sa.insert(archive), rows)
