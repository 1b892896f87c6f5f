"""PostgreSQL remedies: release the sessions at the head of a blocking chain.

Targeted, never broad: the plan names the blocker pids found now, and apply signals only
those that still block when it runs. Cancelling stops a blocker's running query and keeps
its session; a blocker idle in its transaction has nothing to cancel, and needs the
separate, explicit terminate step, which ends its session and rolls its work back.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import pandas as pd
import sqlalchemy as sa

from opslib.actions import Applied, Plan
from opslib.probes import db
from opslib.probes.postgres import blocking_chains, chain_heads, idle_sessions
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
    needs: ClassVar[str] = "postgres"
    terminate: bool = False

    @property
    def name(self) -> str:
        return "terminate_blockers" if self.terminate else "cancel_blockers"

    @property
    def signal(self) -> str:
        return "terminate" if self.terminate else "cancel"

    def plan(self) -> Plan:
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
        return _signal_matching(
            self.profile, plan, self.signal, lambda: set(chain_heads(blocking_chains(self.profile)))
        )


@dataclass
class TerminateIdleSessions:
    """End the pipeline role's sessions idle in a transaction for over `older_than_s`:
    they hold connection slots and locks. Other roles' sessions are never touched."""

    profile: Profile
    needs: ClassVar[str] = "postgres"
    older_than_s: float = 300
    name: str = "terminate_idle_sessions"

    @property
    def role(self) -> str:
        return self.profile.pipeline_role()

    def _candidates(self) -> pd.DataFrame:
        sessions = idle_sessions(self.profile, self.older_than_s)
        return sessions[sessions["user"] == self.role] if not sessions.empty else sessions

    def plan(self) -> Plan:
        sessions = self._candidates()
        pids = [int(pid) for pid in sessions["pid"]] if not sessions.empty else []
        return Plan(
            action=self.name,
            target=self.profile.database_display(),
            summary=f"terminate {len(pids)} session(s) of role {self.role} idle in a transaction "
            f"for over {self.older_than_s:g} s",
            changes=tuple({"pid": pid, "signal": "terminate"} for pid in pids),
            context=sessions,
        )

    def apply(self, plan: Plan) -> Applied:
        """Terminate each planned pid that is still the role's and still idle too long."""
        return _signal_matching(
            self.profile,
            plan,
            "terminate",
            lambda: {int(pid) for pid in self._candidates().get("pid", [])},
        )


def _signal_matching(
    profile: Profile, plan: Plan, signal: str, matching: Callable[[], set[int]]
) -> Applied:
    """Send `signal` to each planned pid that `matching()` still returns now, and count
    how many of the planned pids still match afterwards (those the signal did not help)."""
    planned = [change["pid"] for change in plan.changes]
    now = matching()
    targets = [pid for pid in planned if pid in now]
    with db.change(profile) as connection:
        signalled = [
            pid
            for pid in targets
            if connection.execute(sa.text(SIGNAL_SQL[signal]), {"pid": pid}).scalar_one()
        ]
    return Applied(
        changed=len(signalled),
        before_count=len(targets),
        after_count=len(matching() & set(planned)),
        changes=[change for change in plan.changes if change["pid"] in signalled],
        skipped=[pid for pid in planned if pid not in targets],
        backup=None,
        remeasured=True,
    )
