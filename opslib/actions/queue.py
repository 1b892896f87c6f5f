"""Queue remedies: put jobs stuck in processing back in the queue."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import ClassVar

import sqlalchemy as sa

from opslib.actions import Applied, Plan
from opslib.clock import utc_now
from opslib.probes import db
from opslib.probes.queue import stuck_job_rows
from opslib.probes.queue_table import QueueTable
from opslib.profiles import Profile


@dataclass
class ResetStuckJobs:
    """Set stuck jobs back to queued (and clear started_at) so a worker picks them up; to a
    queue given as a query (read-only) it does not apply."""

    profile: Profile
    needs: ClassVar[str] = "queue"
    name: str = "reset_stuck_jobs"

    @cached_property
    def queue(self) -> QueueTable:
        return QueueTable.of(self.profile)

    @cached_property
    def _reset_values(self) -> dict[str, object]:
        """What a reset writes: the first queued status (without a status column the state
        follows from started_at), and no start."""
        queue = self.queue
        values: dict[str, object] = {queue.mapped["started_at"]: None}
        if queue.has("status"):
            values[queue.mapped["status"]] = queue.config.statuses.queued[0]
        return values

    def plan(self) -> Plan:
        table = self.queue.table  # a queue given as a query cannot be reset: said here
        rows = stuck_job_rows(self.profile)
        id_column = self.queue.config.columns.id
        changes = tuple(
            {"id": job_id, "set": self._reset_values} for job_id in rows[id_column].tolist()
        )
        return Plan(
            action=self.name,
            target=f"{self.profile.database_display()} table {table.fullname}",
            summary=f"reset {len(changes)} stuck job(s) to queued",
            changes=changes,
            context=rows,
        )

    def apply(self, plan: Plan) -> Applied:
        """One transaction holding the write lock: the stuck rule is checked again, so a
        job that finished or moved on since the plan was made is left alone, and exactly
        the rows read as the before-image are the rows updated."""
        queue = self.queue
        planned = [change["id"] for change in plan.changes]
        id_column = queue.column("id")
        with db.change(self.profile) as connection:
            still_stuck = sa.and_(
                id_column.in_(planned), queue.stuck_condition(connection, utc_now())
            )
            locked = sa.select(queue.table).where(still_stuck).with_for_update()
            before = [dict(row) for row in connection.execute(locked).mappings()]
            reset_ids = [row[id_column.name] for row in before]
            changed = connection.execute(
                sa.update(queue.table)
                .where(id_column.in_(reset_ids))
                .values({queue.table.c[name]: value for name, value in self._reset_values.items()})
            ).rowcount
            after = connection.execute(
                sa.select(sa.func.count()).select_from(queue.table).where(still_stuck)
            ).scalar_one()
        return Applied(
            changed=changed,
            before_count=len(before),
            after_count=after,
            changes=[change for change in plan.changes if change["id"] in reset_ids],
            skipped=[job_id for job_id in planned if job_id not in reset_ids],
            backup={"before_image": before},
            remeasured=True,  # in the same transaction: the planned jobs still stuck
        )
