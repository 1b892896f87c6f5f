"""Several fixes as one plan: a procedure whose steps must run in order (stop the
pipeline, back it up, reset its queue, start it again) is reviewed and approved whole.

Every step is planned before anything runs, so the one hash covers the whole procedure
as shown. Steps run in order through their own `apply`, which re-checks its own
condition; the first step that fails, or that measures its own result as not fixed,
stops the procedure, and what the earlier steps did is named in the error and kept as
the audit's before-image (the target is then neither as it was nor as planned).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import pandas as pd

from opslib.actions import Action, Applied, Plan
from opslib.errors import ChangedThenFailed
from opslib.probes import NotApplicable

if TYPE_CHECKING:
    from opslib.profiles import Profile


@dataclass
class Steps:
    """`steps` as one plan named `name`. A step the profile has nothing for (its needs
    unmet, or its plan says it does not apply) is left out and named in the summary, as
    is an `optional` step (by name) whose plan cannot be made; a procedure none of whose
    steps applies does not apply. Step names are unique: apply finds each step's part of
    the plan by its name."""

    name: str
    profile: Profile | None
    steps: tuple[Action, ...]
    needs: str = ""
    optional: frozenset[str] = frozenset()

    def plan(self) -> Plan:
        parts, left_out = [], []
        for step in self.steps:
            if step.profile is not None and step.needs and not step.profile.provides(step.needs):
                left_out.append(f"{step.name} (no {step.needs})")
                continue
            try:
                parts.append(step.plan())
            except NotApplicable as exc:
                left_out.append(f"{step.name} ({exc.reason})")
            except Exception as exc:
                if step.name not in self.optional:
                    raise
                left_out.append(f"{step.name} ({getattr(exc, 'reason', None) or exc})")
        if not parts:
            raise NotApplicable("none of its steps applies: " + ", ".join(left_out))
        refusals = [f"{part.action}: {part.refused}" for part in parts if part.refused]
        changes = tuple(
            {"step": number, "action": part.action, "change": change}
            for number, part in enumerate(parts, start=1)
            for change in part.changes
        )
        # nested procedures read on: "halt ...; then stop ...; then back up ..."
        summary = "; then ".join(part.summary for part in parts)
        if left_out:
            summary += f" (left out: {', '.join(left_out)})"
        return Plan(
            action=self.name,
            target=self.profile.name if self.profile else "",
            summary=summary,
            changes=changes,
            context=_overview(parts),
            parts=tuple(parts),
            refused="; ".join(refusals),
        )

    def apply(self, plan: Plan) -> Applied:
        """Each step with its part of the plan, in order, stopping at the first failure."""
        by_name = {step.name: step for step in self.steps}
        done: list[tuple[str, Applied]] = []
        for part in plan.parts:
            if part.empty:
                continue
            try:
                applied = by_name[part.action].apply(part)
            except Exception as exc:  # re-raised, named with what ran before it
                reason = getattr(exc, "reason", None) or str(exc)
                raise _stopped(done, f"{part.action} failed: {reason}", (part.action, exc)) from exc
            done.append((part.action, applied))
            if applied.unresolved:
                stopped = f"{part.action} left {applied.unresolved} not fixed"
                raise _stopped(done, stopped)
        return Applied(
            changed=sum(applied.changed for _, applied in done),
            before_count=sum(applied.before_count for _, applied in done),
            # only a step that measured again says what is still unfixed
            after_count=sum(applied.after_count for _, applied in done if applied.remeasured),
            changes=[
                {"action": action, **change}
                for action, applied in done
                for change in applied.changes
            ],
            skipped=[skip for _, applied in done for skip in applied.skipped],
            backup={action: applied.backup for action, applied in done},
            remeasured=any(applied.remeasured for _, applied in done),
        )


def _stopped(
    done: list[tuple[str, Applied]], why: str, failure: tuple[str, Exception] | None = None
) -> Exception:
    """The error a stopped procedure ends with: CRITICAL (`ChangedThenFailed`) once any
    step changed something, with every before-image, the failing step's own included."""
    backup = {action: applied.backup for action, applied in done}
    if failure is not None and isinstance(failure[1], ChangedThenFailed):
        action, error = failure
        backup[action] = error.backup
    elif not done:
        return RuntimeError(f"{why}; nothing was changed before it")
    ran = ", ".join(f"{action} ({applied.changed} changed)" for action, applied in done)
    return ChangedThenFailed(f"{why}; stopped there" + (f", after {ran}" if ran else ""), backup)


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
