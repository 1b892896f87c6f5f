"""Alert state: which results deserve a message, the way Nagios decides it.

A check's *soft* state is its latest status; it becomes *hard* only after `hard_after`
consecutive non-OK results (one flapping result is not a page). A message goes out when
the hard state differs from the one last notified (a new problem, a worse one, a
recovery), and again every `repeat_critical` while CRITICAL lasts. An acknowledgement or a
maintenance window silences the message, never the report; a change that was silenced is
told at the first run after the silence ends, if it still holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from opslib.archive.ledger import Ledger
from opslib.archive.tables import acks, alert_state
from opslib.checks import CheckResult
from opslib.profiles import Notify, Profile
from opslib.status import Status


@dataclass(frozen=True)
class Change:
    """One check whose notified state moves: `before` → `after` (`repeat` when it only
    reminds of a lasting CRITICAL)."""

    check: str
    before: Status
    after: Status
    summary: str
    repeat: bool = False
    silenced_by: str = ""


def _silence(
    connection: sa.Connection,
    settings: Notify,
    runbook: str,
    profile: str,
    check: str,
    now: datetime,
) -> str:
    """Why a message about `check` must not be sent now ('' when it may)."""
    for window in settings.maintenance:
        if window.start <= now < window.end:
            return f"maintenance until {window.end:%Y-%m-%d %H:%M}" + (
                f" ({window.reason})" if window.reason else ""
            )
    row = connection.execute(
        sa.select(acks.c.by, acks.c.until, acks.c.reason)
        .where(
            acks.c.runbook == runbook,
            acks.c.profile == profile,
            sa.or_(acks.c.check.is_(None), acks.c.check == check),
            acks.c.until > now,
        )
        .order_by(acks.c.until.desc())
        .limit(1)
    ).first()
    return (
        ""
        if row is None
        else f"acknowledged by {row.by} until {row.until:%Y-%m-%d %H:%M}: {row.reason}"
    )


def update(
    ledger: Ledger, profile: Profile, runbook: str, results: list[CheckResult], now: datetime
) -> list[Change]:
    """Record this run's results in the alert state and return the changes to tell."""
    settings = profile.notify
    changes = []
    with ledger.engine.begin() as connection:
        for result in results:
            key = {"runbook": runbook, "profile": profile.name, "check": result.name}
            row = (
                connection.execute(
                    sa.select(alert_state).where(*(alert_state.c[k] == v for k, v in key.items()))
                )
                .mappings()
                .first()
            )
            before = dict(row) if row else {
                "hard_status": "OK", "soft_status": "OK", "attempts": 0,
                "notified_status": "OK", "notified_at": None,
            }  # fmt: skip
            attempts = 0 if result.status is Status.OK else before["attempts"] + 1
            hard = (
                result.status
                if result.status is Status.OK or attempts >= settings.hard_after
                else Status[before["hard_status"]]
            )
            notified = Status[before["notified_status"]]
            repeat = (
                hard is Status.CRITICAL
                and notified is Status.CRITICAL
                and settings.repeat_critical is not None
                and before["notified_at"] is not None
                and (now - before["notified_at"]).total_seconds() >= settings.repeat_critical
            )
            state = {
                "hard_status": hard.name,
                "soft_status": result.status.name,
                "attempts": attempts,
                "notified_status": before["notified_status"],
                "notified_at": before["notified_at"],
            }
            if hard is not notified or repeat:
                silenced = _silence(connection, settings, runbook, profile.name, result.name, now)
                changes.append(
                    Change(result.name, notified, hard, result.summary, repeat, silenced)
                )
                if not silenced:  # told once the silence ends, if the state still differs
                    state.update(notified_status=hard.name, notified_at=now)
            if row:
                connection.execute(
                    alert_state.update()
                    .where(*(alert_state.c[k] == v for k, v in key.items()))
                    .values(**state)
                )
            else:
                connection.execute(alert_state.insert().values(**key, **state))
    return changes


def acknowledge(
    ledger: Ledger,
    runbook: str,
    profile: str,
    check: str | None,
    until: datetime,
    by: str,
    reason: str,
    now: datetime,
) -> None:
    """Silence messages about `check` (every check when None) until `until`."""
    with ledger.engine.begin() as connection:
        connection.execute(
            acks.insert().values(
                runbook=runbook,
                profile=profile,
                check=check,
                until=until,
                by=by,
                reason=reason,
                created_at=now,
            )
        )
