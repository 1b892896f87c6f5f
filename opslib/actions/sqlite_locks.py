"""Release a SQLite lock by ending the one process that holds it, never a broad kill.

The manual's fix is `pkill -f datasette`: every datasette on the machine, whether or not
it touches this database. Here the plan names each holder by pid and start time, only a
process whose command line matches the profile's `processes.terminable` may be signalled
(a pipeline stage never is), and SIGKILL is a separate, explicit step for a holder that
ignored SIGTERM.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import pandas as pd

from opslib.actions import Applied, Plan
from opslib.probes import ProbeError, processes
from opslib.probes.sqlite_locks import scan
from opslib.profiles import Profile


@dataclass
class ReleaseSqliteLock:
    """SIGTERM (or with `kill=True` SIGKILL) the process `pid`, or when `pid` is 0 every
    process whose lock blocks others, provided it is on the terminable allowlist."""

    profile: Profile
    needs: ClassVar[str] = "sqlite"
    pid: int = 0
    kill: bool = False
    wait_s: float = 10.0

    @property
    def name(self) -> str:
        return "kill_lock_holder" if self.kill else "terminate_lock_holder"

    @property
    def signal(self) -> str:
        return "SIGKILL" if self.kill else "SIGTERM"

    def _allowed(self, holder: pd.Series) -> bool:
        return not holder["role"].startswith("stage") and bool(
            processes.first_match(holder["command"], self.profile.processes.terminable)
        )

    def _chosen(self, holders: pd.DataFrame) -> pd.DataFrame:
        database = self.profile.database_path().name
        if not self.pid:
            return holders[holders["blocks"] != ""] if not holders.empty else holders
        chosen = holders[holders["pid"] == self.pid] if not holders.empty else holders
        if chosen.empty:
            raise ProbeError(f"pid {self.pid} neither holds a lock on nor has {database} open")
        holder = chosen.iloc[0]
        if not self._allowed(holder):
            raise ProbeError(
                f"refusing to signal pid {self.pid} ({holder['brief']}, {holder['role']}): "
                f"it does not match processes.terminable in {self.profile.source}"
            )
        return chosen

    def plan(self) -> Plan:
        if self.kill and not self.pid:
            raise ProbeError(
                "kill=true needs pid=N: SIGKILL is the separate step for one holder that "
                "ignored SIGTERM, never a first move on every holder"
            )
        chosen = self._chosen(scan(self.profile))
        allowed = chosen[chosen.apply(self._allowed, axis=1)] if not chosen.empty else chosen
        refused = chosen[~chosen["pid"].isin(allowed["pid"])] if not chosen.empty else chosen
        refused_list = ", ".join(f"pid {row.pid} ({row.brief})" for row in refused.itertuples())
        if allowed.empty and refused_list:
            summary = (
                f"nothing this runbook may signal: {refused_list} is not in processes.terminable; "
                "end it by hand after checking what it is"
            )
        else:
            summary = (
                f"send {self.signal} to {len(allowed)} lock holder(s): pid "
                f"{', '.join(map(str, allowed['pid'])) or '-'}"
            )
            if refused_list:
                summary += f"; not allowed to signal {refused_list} (not in processes.terminable)"
        return Plan(
            action=self.name,
            target=str(self.profile.database_path()),
            summary=summary,
            changes=tuple(
                {
                    "pid": int(row.pid),
                    "started": float(row.started),
                    "signal": self.signal,
                    "command": row.command,
                }
                for row in allowed.itertuples()
            ),
            context=chosen.drop(columns=["started", "brief"]),
        )

    def apply(self, plan: Plan) -> Applied:
        """Signal each planned process that is still the same process and still has the
        database open; wait for it to exit."""
        open_now = set(scan(self.profile)["pid"])
        outcomes = []
        for change in plan.changes:
            if change["pid"] not in open_now:
                outcomes.append({**change, "result": "no longer has the database open"})
                continue
            result = processes.send(change["pid"], change["started"], change["signal"], self.wait_s)
            outcomes.append({**change, "result": result})
        after = set(scan(self.profile)["pid"])
        signalled = [o for o in outcomes if o["result"] in {"exited", "still running"}]
        return Applied(
            changed=sum(o["result"] == "exited" for o in outcomes),
            before_count=len(signalled),
            after_count=len({change["pid"] for change in plan.changes} & after),
            changes=outcomes,
            skipped=[o["pid"] for o in outcomes if o not in signalled],
            backup=None,
            remeasured=True,  # the planned processes that still have the database open
        )
