"""Redis queue remedies: clear orphans out of the processing set.

An orphan is an id the processing set holds although its row is not processing: its
worker finished or died without cleaning up, and monitoring counts it as in flight
forever. A queued orphan goes back on the pending list so a worker picks it up; any other
is only removed from the set.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from opslib.actions import Applied, Plan
from opslib.probes.redis import LISTED, client, reconciliation, still_orphans
from opslib.profiles import Profile


@dataclass
class ClearOrphans:
    profile: Profile
    needs: ClassVar[str] = "redis_queue"
    name: str = "clear_processing_orphans"

    def plan(self) -> Plan:
        drift = reconciliation(self.profile)
        orphans = drift.listed[drift.listed["problem"] == "orphan"]
        rest = drift.orphans - len(orphans)
        more = f" (the first {LISTED:,}: run again for the other {rest:,})" if rest else ""
        changes = tuple(
            {"id": row.id, "srem": self.keys["processing"], "requeue": row.table_state == "queued"}
            for row in orphans.itertuples()
        )
        return Plan(
            action=self.name,
            target=f"Redis {self.keys['processing']}",
            summary=f"remove {len(changes)} orphan(s) from {self.keys['processing']}, requeue "
            f"{sum(c['requeue'] for c in changes)} on {self.keys.get('pending', '-')}{more}",
            changes=changes,
            context=orphans,
        )

    @property
    def keys(self) -> dict[str, str]:
        return self.profile.queue.redis_keys

    def apply(self, plan: Plan) -> Applied:
        """Only ids that are still orphans now; each removal and requeue in one MULTI."""
        planned = [change["id"] for change in plan.changes]
        still = still_orphans(self.profile, planned)
        done = []
        with client(self.profile) as connection:
            for change in plan.changes:
                if change["id"] not in still:
                    continue
                transaction = connection.pipeline(transaction=True)
                transaction.srem(change["srem"], change["id"])
                if change["requeue"] and "pending" in self.keys:
                    transaction.rpush(self.keys["pending"], change["id"])
                if transaction.execute()[0]:
                    done.append(change)
        after = still_orphans(self.profile, planned)
        return Applied(
            changed=len(done),
            before_count=len(still & set(planned)),
            after_count=len(after & set(planned)),
            changes=done,
            skipped=[job for job in planned if job not in still],
            backup={"processing_members_removed": [change["id"] for change in done]},
            remeasured=True,
        )
