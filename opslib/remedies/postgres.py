"""PostgreSQL remedies: release the sessions at the head of a blocking chain.

Targeted, never broad: the plan names the blocker pids found now, and apply signals only
those that still block when it runs. Cancelling stops a blocker's running query and keeps
its session; a blocker idle in its transaction has nothing to cancel, and needs the
separate, explicit terminate step, which ends its session and rolls its work back.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import sqlalchemy as sa

from opslib import db
from opslib.actions import Applied, Plan
from opslib.probes.postgres import blocking_chains, chain_heads
from opslib.profiles import Profile

SIGNAL_SQL = {
    "cancel": "SELECT pg_cancel_backend(:pid)",
    # waits up to 5 s for the backend to be gone, so the after-count is meaningful
    "terminate": "SELECT pg_terminate_backend(:pid, 5000)",
}


@dataclass
class ReleaseBlockers:
    """Cancel (or, with `terminate=True`, terminate) the sessions that block others."""

    profile: Profile
    terminate: bool = False

    @property
    def name(self) -> str:
        return "terminate_blockers" if self.terminate else "cancel_blockers"

    @property
    def signal(self) -> str:
        return "terminate" if self.terminate else "cancel"

    def plan(self) -> Plan:
        if not self.profile.provides("postgres"):
            return Plan(self.name, self.profile.name, "the profile has no PostgreSQL database", ())
        chains = blocking_chains(self.profile)
        pids = chain_heads(chains)
        return Plan(
            action=self.name,
            target=self.profile.database_display(),
            summary=f"{self.signal} {len(pids)} blocking session(s): pid {', '.join(map(str, pids)) or '-'}",
            changes=tuple({"pid": pid, "signal": self.signal} for pid in pids),
            context=chains[chains["blocker_pid"].isin(pids)] if pids else pd.DataFrame(),
        )

    def apply(self, plan: Plan) -> Applied:
        """Signal each planned pid that still blocks someone now; leave the others."""
        planned = [change["pid"] for change in plan.changes]
        heads_now = set(chain_heads(blocking_chains(self.profile)))
        still_blocking = [pid for pid in planned if pid in heads_now]
        with db.change(self.profile) as connection:
            signalled = [
                pid
                for pid in still_blocking
                if connection.execute(sa.text(SIGNAL_SQL[self.signal]), {"pid": pid}).scalar_one()
            ]
        remaining = set(chain_heads(blocking_chains(self.profile))) & set(planned)
        return Applied(
            changed=len(signalled),
            before_count=len(still_blocking),
            after_count=len(remaining),
            changes=[change for change in plan.changes if change["pid"] in signalled],
            skipped=[pid for pid in planned if pid not in still_blocking],
            backup=None,
        )
