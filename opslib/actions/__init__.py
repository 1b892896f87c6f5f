"""Remediation as plan → apply → audit, the one mechanism every fix goes through.

`plan()` computes exactly what would change and a short hash of it. Nothing changes
unless the run says `apply=True` (the plan is shown right above, in the same run) or
`approve=<hash>` (several, comma-separated, for a runbook with several plans) matches the
freshly computed plan (an unattended run carrying out a plan
a person reviewed in an earlier report). Apply re-checks its condition inside the
change and keeps a before-image of whatever it rewrites. The audit record is opened
before the change starts and closed with its outcome, so no change goes unrecorded.

The gate writes to the `AuditLog` it is handed (the ledger, in a run) and knows nothing
of where that lives: the archive sits above it, not below.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, Protocol

import pandas as pd

from opslib.checks import CheckResult
from opslib.clock import utc_now
from opslib.context import RunContext
from opslib.errors import ChangedThenFailed
from opslib.probes import NotApplicable
from opslib.profiles.secrets import scrub, scrub_values
from opslib.status import Status

if TYPE_CHECKING:
    from opslib.profiles import Profile

HASH_LENGTH = 12
# how a notebook asks for a plan to be carried out; the CLI has its own flags
NOTEBOOK_APPLY = "-p apply=true or -p approve={hash}"


@dataclass(frozen=True)
class Plan:
    """What an action would change. Only `action`, `target` and `changes` are hashed:
    context such as ages moves every second and must not invalidate an approval."""

    action: str
    target: str
    summary: str
    changes: tuple[dict[str, Any], ...]
    context: pd.DataFrame | None = field(default=None, compare=False)
    # the plans of the steps of a procedure planned whole (`actions.steps.Steps`)
    parts: tuple[Plan, ...] = field(default=(), compare=False)
    # why the action will not do what it is for now (a resume while a budget is spent):
    # nothing is planned, and the run says so as a WARNING, never as "nothing to do"
    refused: str = field(default="", compare=False)

    @cached_property
    def hash(self) -> str:
        canonical = json.dumps(
            {"action": self.action, "target": self.target, "changes": list(self.changes)},
            sort_keys=True,
            default=str,
        )
        return hashlib.sha256(canonical.encode()).hexdigest()[:HASH_LENGTH]

    @property
    def empty(self) -> bool:
        return not self.changes


@dataclass
class Applied:
    """What apply actually did; `skipped` are planned items whose condition no longer held.
    An action that measures its condition again after the change says so (`remeasured`):
    its `after_count` is then the planned items that still match (a cancel that did not
    release a lock), for which the fix did not work."""

    changed: int
    before_count: int
    after_count: int
    changes: list[dict[str, Any]]
    skipped: list[Any]
    backup: dict[str, Any] | None
    remeasured: bool = False

    @property
    def unresolved(self) -> int:
        return self.after_count if self.remeasured else 0


class Action(Protocol):
    """A remedy: `needs` names what the profile must provide (as `Profile.provides`
    reads it); on a profile without it the action has nothing to do. An action on no
    profile (pruning the archive) has `profile` None and `needs` ''."""

    name: str
    needs: str
    profile: Profile | None

    def plan(self) -> Plan: ...

    def apply(self, plan: Plan) -> Applied: ...


class AuditLog(Protocol):
    """Where applied changes are recorded: an entry opened before the change starts and
    closed with its outcome (the ledger implements it)."""

    def open_audit(self, entry: dict[str, Any]) -> int: ...

    def close_audit(self, audit_id: int, outcome: str, **facts: Any) -> None: ...


@dataclass
class Outcome:
    plan: Plan
    mode: str  # not-applicable | nothing-to-do | refused | dry-run | stale-approval | applied | failed
    message: str
    result: CheckResult
    applied: Applied | None = None  # what the change did, when it was applied


def execute(
    action: Action,
    context: RunContext,
    audit: Callable[[], AuditLog],
    *,
    apply: bool = False,
    approve: str = "",
    how_to_apply: str = NOTEBOOK_APPLY,
) -> Outcome:
    """Plan, then apply only when the run asks for it, and record what was applied in the
    log `audit` opens (called only then: a dry run leaves no trace). `how_to_apply` tells
    a dry run how to ask for the change (`{hash}` is the plan's)."""
    name = f"action:{action.name}"
    try:
        if action.needs and action.profile and not action.profile.provides(action.needs):
            raise NotApplicable(f"no {action.needs}")
        plan = action.plan()
    except NotApplicable as exc:  # the profile has nothing this action changes
        unplanned = Plan(action.name, action.profile.name if action.profile else "", exc.reason, ())
        message = f"not applicable to profile {unplanned.target}: {exc.reason}"
        return _outcome(unplanned, "not-applicable", message, Status.OK, name)
    except Exception as exc:  # noqa: BLE001 - a plan that cannot be made is UNKNOWN, not OK
        reason = scrub(getattr(exc, "reason", None) or str(exc))
        unplanned = Plan(action.name, target="", summary=f"no plan: {reason}", changes=())
        return _outcome(unplanned, "failed", f"could not plan: {reason}", Status.UNKNOWN, name)
    if plan.refused:
        return _outcome(plan, "refused", f"refused: {plan.refused}", Status.WARNING, name)
    if plan.empty:
        return _outcome(plan, "nothing-to-do", f"nothing to do: {plan.summary}", Status.OK, name)
    # a runbook with several plans is approved with their hashes joined by commas
    approved = {part.strip() for part in approve.split(",") if part.strip()}
    if approved and plan.hash not in approved:
        message = (
            f"not applied: the approved plan(s) {', '.join(sorted(approved))} do not include this "
            f"plan, {plan.hash} (stale, or not chosen); review the plan above and approve its hash"
        )
        return _outcome(plan, "stale-approval", message, Status.WARNING, name)
    if not (apply or approved):
        message = f"dry run: would {plan.summary}; apply with {how_to_apply.format(hash=plan.hash)}"
        return _outcome(plan, "dry-run", message, Status.OK, name)
    log = audit()
    # the ledger keeps what it is given: a target names a database by its URL, and the
    # audit row is written before anything else of the run is scrubbed
    audit_id = log.open_audit(
        {
            "at": utc_now(),
            "os_user": context.os_user,
            "run_by": context.by,
            "runbook": context.runbook,
            "profile": context.profile,
            "run_id": context.run_id,
            "action": action.name,
            "plan_hash": plan.hash,
            "target": scrub(plan.target),
            "summary": scrub(plan.summary),
        }
    )
    try:
        applied = action.apply(plan)
    except Exception as exc:  # noqa: BLE001 - any failure of a change must surface as UNKNOWN
        # the action's error says what, if anything, it changed before failing
        reason = scrub(getattr(exc, "reason", None) or str(exc))
        # a procedure stopped half way keeps the before-images of the steps it ran
        log.close_audit(
            audit_id, "failed", error=reason, backup=scrub_values(getattr(exc, "backup", None))
        )
        status = Status.CRITICAL if isinstance(exc, ChangedThenFailed) else Status.UNKNOWN
        return _outcome(plan, "failed", f"apply failed: {reason}", status, name)
    log.close_audit(
        audit_id,
        "applied",
        changes=scrub_values(applied.changes),
        before_count=applied.before_count,
        after_count=applied.after_count,
        backup=scrub_values(applied.backup),
    )
    skipped = (
        f"; {len(applied.skipped)} left alone, no longer matching: {applied.skipped}"
        if applied.skipped
        else ""
    )
    message = (
        f"applied plan {plan.hash}: {applied.changed} changed "
        f"(matching before {applied.before_count}, after {applied.after_count}){skipped}"
    )
    status = Status.OK
    if applied.unresolved:  # measured again: the condition still holds, so nothing is fixed
        message += f"; not resolved: {applied.unresolved} still match after the change"
        status = Status.WARNING
    outcome = _outcome(plan, "applied", message, status, name, value=applied.changed)
    outcome.applied = applied
    return outcome


def _outcome(
    plan: Plan, mode: str, message: str, status: Status, name: str, value: float | None = None
) -> Outcome:
    result = CheckResult(name=name, status=status, value=value, unit="changes", summary=message)
    return Outcome(plan, mode, message, result)
