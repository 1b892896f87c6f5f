"""Queue remedies: put jobs back in the queue, those stuck in processing
(`ResetStuckJobs`) or the ones a person names (`ResetJobs`, optionally at another stage).

A reset writes the first queued status, clears the start and refreshes the progress
column (`queue.columns.updated_at`, in the column's own encoding), so a job put back
does not look stuck again the moment a worker takes it. Where the profile mirrors the
queue in Redis (`queue.redis_keys`), the same plan moves each id back there too, with
`actions.redis.move_back`: Redis is asked before anything changes, then the table changes
in its transaction, then Redis; a Redis that fails after the table changed is a
change-then-fail naming the ids each side holds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, ClassVar

import pandas as pd
import sqlalchemy as sa

from opslib.actions import Applied, Plan
from opslib.actions.redis import check_keys, move_back, positions, queue_keys
from opslib.clock import utc_now
from opslib.errors import ChangedThenFailed
from opslib.probes import ProbeError, db
from opslib.probes.queue import stuck_job_rows
from opslib.probes.queue_table import QueueTable, closest
from opslib.probes.redis import id_matcher, still_orphans
from opslib.profiles import Profile

# what a plan shows for the progress stamp: the time is taken when the change is made
NOW = "now"
# states a targeted reset moves (a queued job only to another stage)
RESETTABLE = ("processing", "failed", "queued")
# stage names quoted when a given stage is not one of them
KNOWN_STAGES = 50


@dataclass
class _QueueReset:
    """What both resets share: the values they write, the Redis half of the plan, and
    the order of the change (Redis checked, the table, then Redis)."""

    profile: Profile

    @cached_property
    def queue(self) -> QueueTable:
        return QueueTable.of(self.profile)

    @cached_property
    def with_redis(self) -> bool:
        return self.profile.provides("redis_queue") and bool(queue_keys(self.profile))

    @property
    def target(self) -> str:
        table = self.queue.table  # a queue given as a query cannot be reset: said here
        where = f"{self.profile.database_display()} table {table.fullname}"
        if self.with_redis:
            where += " and Redis " + ", ".join(self.redis_keys.values())
        return where

    @property
    def redis_keys(self) -> dict[str, str]:
        return queue_keys(self.profile)

    def reset_values(self) -> dict[str, object]:
        """The first queued status (without a status column the state follows from
        started_at), no start, and progress now (bound when the change is made)."""
        queue = self.queue
        values: dict[str, object] = {queue.mapped["started_at"]: None}
        if queue.has("status"):
            values[queue.mapped["status"]] = queue.config.statuses.queued[0]
        if queue.has("updated_at"):
            values[queue.mapped["updated_at"]] = NOW
        return values

    def change(self, job_id: Any, values: dict[str, object], **facts: Any) -> dict[str, Any]:
        """One planned row: its id, what it was, what the table gets and what Redis does."""
        change = {"id": job_id, **facts, "set": values}
        if self.with_redis:
            keys = self.redis_keys
            change["redis"] = {
                verb: keys[role] for verb, role in (("srem", "processing"), ("rpush", "pending"))
                if role in keys
            }  # fmt: skip
        return change

    def shown(self, rows: pd.DataFrame, reset: list[Any]) -> tuple[pd.DataFrame, str]:
        """The plan's rows with what Redis holds of each id to reset and what it would
        do there, and a note for the summary; a Redis that cannot be read is said so (the
        apply asks it again before it changes anything)."""
        if not self.with_redis or not reset:
            return rows, ""
        keys = self.redis_keys
        members = [str(job) for job in reset]
        note = " and in Redis take them out of " + " / onto ".join(keys.values())
        try:
            where = positions(self.profile, members)
        except ProbeError as exc:
            rows["redis"] = [
                f"unknown: {exc.reason}" if str(job) in members else "" for job in rows["id"]
            ]
            return rows, f"{note} (Redis could not be read now: {exc.reason})"
        for role, column, yes, no in (
            ("processing", "in_processing_set", "remove", "not in it"),
            ("pending", "on_pending_list", "already on it", "push"),
        ):
            if role in keys:
                found = where[column].to_dict()
                rows[keys[role]] = [
                    (yes if found[str(job)] else no) if str(job) in found else ""
                    for job in rows["id"]
                ]
        return rows, note

    def stamped(self, connection: sa.Connection, values: dict[str, object]) -> dict:
        """The values as columns, the progress column's `NOW` as now in its encoding."""
        queue = self.queue
        bound = dict(values)
        if queue.has("updated_at") and bound.get(queue.mapped["updated_at"]) == NOW:
            stamp = queue.encoding(connection, "updated_at").bound(utc_now())
            bound[queue.mapped["updated_at"]] = stamp
        return {queue.table.c[name]: value for name, value in bound.items()}

    def check_redis(self, plan: Plan) -> None:
        """Before the table changes: Redis answers and its keys can take the move."""
        if self.with_redis and plan.changes:
            check_keys(self.profile)

    def finish(
        self, plan: Plan, before: list[dict], reset_ids: list[Any], changed: int, after: int
    ) -> Applied:
        """The Redis half for the ids the table reset, then what both sides hold now."""
        backup: dict[str, Any] = {"before_image": before}
        if self.with_redis and reset_ids:
            members = [str(job) for job in reset_ids]
            moved = move_back(self.profile, [(member, True) for member in members])
            backup["redis"] = {"removed": moved.removed, "pushed": moved.pushed}
            if moved.failed:
                made = f"; Redis moved {moved.moved}" if moved.moved else ""
                raise ChangedThenFailed(
                    f"the table put {members} back in the queue{made}, but Redis could not "
                    f"be changed for {moved.failed}: {moved.reason}; queue-not-processing "
                    "clears them from the processing set once Redis answers",
                    backup,
                )
            try:  # read back where the profile names a processing set to read
                if "processing" in self.profile.queue.redis_keys:
                    after += len(still_orphans(self.profile, members))
            except ProbeError as exc:
                raise ChangedThenFailed(
                    f"both stores changed for {members}, but Redis could not be read back "
                    f"to confirm it: {exc.reason}",
                    backup,
                ) from None
        return Applied(
            changed=changed,
            before_count=len(before),
            after_count=after,
            changes=[change for change in plan.changes if change["id"] in reset_ids],
            skipped=[change["id"] for change in plan.changes if change["id"] not in reset_ids],
            backup=backup,
            remeasured=True,  # the table in its transaction, Redis read back after the move
        )


@dataclass
class ResetStuckJobs(_QueueReset):
    """Set stuck jobs back to queued (clear started_at, refresh the progress column) so a
    worker picks them up, in Redis too where the profile mirrors the queue there; to a
    queue given as a query (read-only) it does not apply."""

    needs: ClassVar[str] = "queue"
    name: str = "reset_stuck_jobs"

    def plan(self) -> Plan:
        target = self.target
        rows = stuck_job_rows(self.profile)
        id_column = self.queue.config.columns.id
        reset = rows[id_column].tolist()
        changes = tuple(self.change(job_id, self.reset_values()) for job_id in reset)
        context, note = self.shown(rows.rename(columns={id_column: "id"}), reset)
        return Plan(
            action=self.name,
            target=target,
            summary=f"reset {len(changes)} stuck job(s) to queued{note}",
            changes=changes,
            context=context.rename(columns={"id": id_column}),
        )

    def apply(self, plan: Plan) -> Applied:
        """One transaction holding the write lock: the stuck rule is checked again, so a
        job that finished or moved on since the plan was made is left alone, and exactly
        the rows read as the before-image are the rows updated; then Redis."""
        self.check_redis(plan)
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
                .values(self.stamped(connection, self.reset_values()))
            ).rowcount
            after = connection.execute(
                sa.select(sa.func.count()).select_from(queue.table).where(still_stuck)
            ).scalar_one()
        return self.finish(plan, before, reset_ids, changed, after)


@dataclass
class ResetJobs(_QueueReset):
    """Put the named jobs back in the queue, optionally at another `stage`: processing
    and failed ones (a failed one loses its end and error, kept in the before-image), and
    a queued one when it moves stage. Ids that do not exist, completed jobs (a finished job
    is run again only by a new one, never by a reset) and other states are named in the
    plan and left alone. `ids` is a list or one comma-separated string."""

    ids: Sequence[str] | str = ()
    stage: str | None = None
    needs: ClassVar[str] = "queue"
    name: str = "reset_jobs"

    @property
    def wanted(self) -> list[str]:
        """The given ids, each once, in the order given."""
        raw = self.ids.split(",") if isinstance(self.ids, str) else self.ids
        return list(dict.fromkeys(str(job).strip() for job in raw if str(job).strip()))

    def reset_values(self) -> dict[str, object]:
        queue = self.queue
        values = super().reset_values()
        for role in ("finished_at", "failed_at", "error"):
            if queue.has(role):
                values[queue.mapped[role]] = None
        if self.stage:
            values[queue.mapped["stage"]] = self.stage
        return values

    def plan(self) -> Plan:
        target, wanted = self.target, self.wanted
        if not wanted:
            return Plan(self.name, target, "no ids given: nothing to reset", ())
        with self.queue.reading(self.profile) as connection:
            if self.stage:
                self._check_stage(connection)
            rows = self._rows(connection, wanted)
        found = {str(row["id"]): row for row in rows.to_dict("records")}
        changes, left, shown = [], {}, []
        for job in wanted:
            row = found.get(job)
            why = self._left_alone(row)
            if why:
                left[job] = why
            else:
                changes.append(self.change(row["id"], self.reset_values(), was=row["state"]))
            shown.append({**(row or {"id": job}), "plan": f"left alone: {why}" if why else "reset"})
        reset = [change["id"] for change in changes]
        context, note = self.shown(pd.DataFrame(shown), reset)
        at = f" at stage {self.stage}" if self.stage else ""
        alone = "; left alone: " + ", ".join(f"{job} ({why})" for job, why in left.items())
        return Plan(
            action=self.name,
            target=target,
            summary=f"reset {len(changes)} job(s) to queued{at}{note}" + alone * bool(left),
            changes=tuple(changes),
            context=context,
        )

    def _left_alone(self, row: dict | None) -> str:
        """Why a given id is not reset, or '' when it is."""
        if row is None:
            return "no such id"
        if row["state"] == "completed":
            return "completed: a finished job is not reset"
        if row["state"] not in RESETTABLE:
            return f"{row['state']}: not a state a reset moves"
        moves_stage = self.stage and str(row.get("stage")) != self.stage
        return "" if row["state"] != "queued" or moves_stage else "already queued"

    def _state(self) -> sa.ColumnElement:
        """Each row's state by the mapping: a role's name, else `other`."""
        cases = []
        for role in ("processing", "queued", "failed", "completed"):
            try:
                cases.append((self.queue.state(role), role))
            except ProbeError:  # no way to tell failed from completed: completed it is
                continue
        return sa.case(*cases, else_="other")

    def _rows(self, connection: sa.Connection, ids: list[str]) -> pd.DataFrame:
        queue = self.queue
        shown = [
            role for role in ("stage", "status", "started_at", "updated_at") if queue.has(role)
        ]
        query = (
            sa.select(
                queue.column("id").label("id"),
                *[queue.column(role) for role in shown],
                self._state().label("state"),
            )
            .select_from(queue.source)
            .where(id_matcher(queue, connection)(ids))
        )
        return db.frame(connection, query).rename(
            columns={queue.mapped["stage"]: "stage"} if "stage" in shown else {}
        )

    def _check_stage(self, connection: sa.Connection) -> None:
        """The stage is one the queue's stage column holds."""
        queue = self.queue
        if not queue.has("stage"):
            raise ProbeError("queue.columns.stage is not mapped: a job cannot be moved to a stage")
        column = queue.column("stage")
        exists = sa.select(column).select_from(queue.source).where(column == self.stage).limit(1)
        if connection.execute(exists).first() is not None:
            return
        known_query = sa.select(column).select_from(queue.source).distinct().limit(KNOWN_STAGES)
        known = sorted(str(stage) for stage in connection.execute(known_query).scalars())
        raise ProbeError(
            f"stage {self.stage!r} is not a stage of the queue (queue.columns.stage holds "
            f"{', '.join(known) or 'none'}){closest(self.stage, known)}"
        )

    def apply(self, plan: Plan) -> Applied:
        """One transaction holding the write lock: a row whose state moved since the plan
        (a job that finished meanwhile) is left alone; then Redis."""
        self.check_redis(plan)
        queue = self.queue
        planned = {str(change["id"]): change for change in plan.changes}
        id_column = queue.column("id")
        with db.change(self.profile) as connection:
            locked = (
                sa.select(queue.table, self._state().label("_state"))
                .where(id_matcher(queue, connection)(list(planned)))
                .with_for_update()
            )
            before, reset_ids = [], []
            for row in connection.execute(locked).mappings():
                change = planned.get(str(row[id_column.name]))
                if change is not None and row["_state"] == change["was"]:
                    before.append({key: row[key] for key in row if key != "_state"})
                    reset_ids.append(row[id_column.name])
            changed = connection.execute(
                sa.update(queue.table)
                .where(id_column.in_(reset_ids))
                .values(self.stamped(connection, self.reset_values()))
            ).rowcount
            moved = sa.and_(id_column.in_(reset_ids), queue.state("queued"))
            if self.stage:
                moved = sa.and_(moved, queue.column("stage") == self.stage)
            after = (
                len(reset_ids)
                - connection.execute(
                    sa.select(sa.func.count()).select_from(queue.table).where(moved)
                ).scalar_one()
            )
        return self.finish(plan, before, reset_ids, changed, after)
