"""Several fixes as one plan: a procedure whose steps must run in order (stop the
pipeline, back it up, reset its queue, start it again) is reviewed and approved whole.

Every step is planned before anything runs, so the one hash covers the whole procedure
as shown. Steps run in order through their own `apply`, which re-checks its own
condition; the first step that fails, or that measures its own result as not fixed,
stops the procedure, and what the earlier steps did is named in the error and kept as
the audit's before-image (the target is then neither as it was nor as planned).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pandas as pd

from opslib.actions import Action, Applied, Plan
from opslib.errors import ChangedThenFailed
from opslib.probes import NotApplicable

if TYPE_CHECKING:
    from opslib.profiles import Profile


class StepsFailed(ChangedThenFailed):
    """A step failed after earlier steps changed something; `backup` holds their
    before-images, which the gate records with the failure."""

    def __init__(self, reason: str, backup: dict[str, Any]) -> None:
        super().__init__(reason)
        self.backup = backup


@dataclass
class Steps:
    """`steps` as one plan named `name`. A step whose needs the profile lacks is left
    out and named in the summary; a procedure none of whose steps apply does not apply."""

    name: str
    profile: Profile | None
    steps: tuple[Action, ...]
    needs: str = ""
    left_out: list[str] = field(default_factory=list, init=False)

    def _applicable(self) -> list[Action]:
        self.left_out = [
            f"{step.name} (no {step.needs})"
            for step in self.steps
            if step.profile is not None and step.needs and not step.profile.provides(step.needs)
        ]
        kept = [
            step for step in self.steps if f"{step.name} (no {step.needs})" not in self.left_out
        ]
        if not kept:
            raise NotApplicable("none of its steps applies: " + ", ".join(self.left_out))
        return kept

    def plan(self) -> Plan:
        parts = tuple(step.plan() for step in self._applicable())
        changes = tuple(
            {"step": number, "action": part.action, "change": change}
            for number, part in enumerate(parts, start=1)
            for change in part.changes
        )
        summary = "; ".join(
            f"{number}. {part.summary}" for number, part in enumerate(parts, start=1)
        )
        if self.left_out:
            summary += f" (left out: {', '.join(self.left_out)})"
        return Plan(
            action=self.name,
            target=self.profile.name if self.profile else "",
            summary=summary,
            changes=changes,
            context=_overview(parts),
            parts=parts,
        )

    def apply(self, plan: Plan) -> Applied:
        """Each step with its part of the plan, in order, stopping at the first failure."""
        done: list[tuple[str, Applied]] = []
        for step, part in zip(self._applicable(), plan.parts, strict=True):
            if part.empty:
                continue
            try:
                applied = step.apply(part)
            except Exception as exc:  # re-raised, named with what ran before it
                reason = getattr(exc, "reason", None) or str(exc)
                raise self._stopped(done, f"{part.action} failed: {reason}") from exc
            done.append((part.action, applied))
            if applied.unresolved:
                stopped = f"{part.action} left {applied.unresolved} not fixed"
                raise self._stopped(done, stopped)
        return Applied(
            changed=sum(applied.changed for _, applied in done),
            before_count=sum(applied.before_count for _, applied in done),
            after_count=sum(applied.after_count for _, applied in done),
            changes=[
                {"action": action, **change}
                for action, applied in done
                for change in applied.changes
            ],
            skipped=[skip for _, applied in done for skip in applied.skipped],
            backup={action: applied.backup for action, applied in done},
            remeasured=any(applied.remeasured for _, applied in done),
        )

    def _stopped(self, done: list[tuple[str, Applied]], why: str) -> Exception:
        ran = ", ".join(f"{action} ({applied.changed} changed)" for action, applied in done)
        if not done:
            return RuntimeError(f"{why}; nothing was changed before it")
        return StepsFailed(
            f"{why}; stopped there, after {ran}",
            {action: applied.backup for action, applied in done},
        )


def _overview(parts: tuple[Plan, ...]) -> pd.DataFrame:
    """One row per step: what it does, on what, and how many changes."""
    return pd.DataFrame(
        [
            {
                "step": number,
                "action": part.action,
                "target": part.target,
                "changes": len(part.changes),
                "plan": part.summary,
            }
            for number, part in enumerate(parts, start=1)
        ]
    )
