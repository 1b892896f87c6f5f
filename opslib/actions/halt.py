"""Emergency halt: set or clear the flag workers read before taking a job. Clearing it
resumes spending, so it goes through the budget's resume guard (`ResumeGuard`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import sqlalchemy as sa

from opslib.actions import Applied, Plan
from opslib.actions.budget import ResumeGuard, still_safe
from opslib.clock import utc_now
from opslib.probes import db
from opslib.probes.halt import ON, control_table, halt_value, stamp_encoding
from opslib.profiles import Profile


@dataclass
class SetHalt:
    """Halt (or with `halt=False` resume) the pipeline. `needed=False` plans nothing, for
    runbooks that propose a halt only when a check calls for it. A resume is refused while
    a budget of the profile is at or over 100 %, unless `force` (the plan then carries it)."""

    profile: Profile
    needs: ClassVar[str] = "halt"
    halt: bool = True
    reason: str = ""
    needed: bool = True
    force: bool = False

    @property
    def name(self) -> str:
        return "halt_pipeline" if self.halt else "resume_pipeline"

    @property
    def target_value(self) -> str:
        return ON if self.halt else "off"

    def plan(self) -> Plan:
        if not self.needed:
            return Plan(
                self.name, self.profile.name, f"no halt needed: planned only for {self.reason}", ()
            )
        with db.connect(self.profile) as connection:
            current, _since = halt_value(connection, self.profile)
        target = (
            f"{self.profile.database_display()} {self.profile.halt.table}.{self.profile.halt.key}"
        )
        if current == self.target_value:
            return Plan(self.name, target, f"the flag is already {current}", ())
        verb = "halt the pipeline" if self.halt else "resume the pipeline"
        guard = ResumeGuard([], False) if self.halt else ResumeGuard.read(self.profile, self.force)
        if guard.refused:
            return Plan(self.name, target, "not resuming the pipeline", (), refused=guard.refusal())
        return Plan(
            self.name,
            target,
            f"{verb}: set {self.profile.halt.key} from {current} to {self.target_value}"
            + (f" ({self.reason})" if self.reason else "")
            + guard.note(),
            (
                {
                    "key": self.profile.halt.key,
                    "value": [current, self.target_value],
                    **guard.fact(),
                },
            ),
        )

    def apply(self, plan: Plan) -> Applied:
        """Set the flag only if it still has the value the plan saw (a resume also only
        while the budgets are as the plan saw them); read it again afterwards."""
        (change,) = plan.changes
        before, after = change["value"]
        control = control_table(self.profile.halt.table)
        if after != ON and not still_safe(self.profile, change):
            return Applied(0, 0, 0, [], [f"{change['key']}: a budget is now spent"], None)
        with db.change(self.profile) as connection:
            current, _since = halt_value(connection, self.profile, lock=True)
            if current != before:
                return Applied(0, 0, 0, [], [change["key"]], None)
            stamp = stamp_encoding(connection, self.profile.halt.table).bound(utc_now())
            values = {"value": after, "updated_at": stamp}
            updated = connection.execute(
                sa.update(control).where(control.c.key == change["key"]).values(values)
            ).rowcount
            if not updated:
                connection.execute(sa.insert(control).values(key=change["key"], **values))
        with db.connect(self.profile) as connection:
            now_value, _since = halt_value(connection, self.profile)
        unchanged = int(now_value != after)
        return Applied(1, 1, unchanged, [change], [], {"previous_value": before}, remeasured=True)
