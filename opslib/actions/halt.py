"""Emergency halt: set or clear the flag workers read before taking a job."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import sqlalchemy as sa

from opslib.actions import Applied, Plan
from opslib.clock import utc_now
from opslib.probes import db
from opslib.probes.halt import ON, control_table, halt_value, stamp_encoding
from opslib.profiles import Profile


@dataclass
class SetHalt:
    """Halt (or with `halt=False` resume) the pipeline. `needed=False` plans nothing, for
    runbooks that propose a halt only when a check calls for it."""

    profile: Profile
    needs: ClassVar[str] = "halt"
    halt: bool = True
    reason: str = ""
    needed: bool = True

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
        return Plan(
            self.name,
            target,
            f"{verb}: set {self.profile.halt.key} from {current} to {self.target_value}"
            + (f" ({self.reason})" if self.reason else ""),
            ({"key": self.profile.halt.key, "value": [current, self.target_value]},),
        )

    def apply(self, plan: Plan) -> Applied:
        """Set the flag only if it still has the value the plan saw."""
        (change,) = plan.changes
        before, after = change["value"]
        control = control_table(self.profile.halt.table)
        with db.change(self.profile) as connection:
            current, _since = halt_value(connection, self.profile)
            if current != before:
                return Applied(0, 0, 0, [], [change["key"]], None)
            stamp = stamp_encoding(connection, self.profile.halt.table).bound(utc_now())
            values = {"value": after, "updated_at": stamp}
            updated = connection.execute(
                sa.update(control).where(control.c.key == change["key"]).values(values)
            ).rowcount
            if not updated:
                connection.execute(sa.insert(control).values(key=change["key"], **values))
        return Applied(1, 1, 0, [change], [], {"previous_value": before})
