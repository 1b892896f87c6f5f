"""Redis queue remedies: move ids back where a worker finds them, and clear orphans out
of the processing set.

`move_back` is the one Redis requeue: each id leaves the processing set and, when asked
and the profile names a pending list, goes onto that list unless it is there already,
both in one MULTI. `ClearOrphans` uses it for the ids Redis holds wrongly, the queue
resets (`actions.queue`) for the jobs they put back in the table, so both stores move in
the same plan.

An orphan is an id the processing set holds although its row is not processing: its
worker finished or died without cleaning up, and monitoring counts it as in flight
forever. A queued orphan goes back on the pending list so a worker picks it up; any other
is only removed from the set.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

import pandas as pd
import redis

from opslib.actions import Applied, Plan
from opslib.errors import ChangedThenFailed
from opslib.probes import ProbeError
from opslib.probes.redis import LISTED, client, reconciliation, still_orphans
from opslib.profiles import Profile

# ids per MULTI (and per SMISMEMBER/LPOS round trip): few round trips, short transactions
MOVE_BATCH = 1_000
# the type each queue key must have for a move, by role (a missing key is empty)
KEY_TYPES = {"processing": "set", "pending": "list"}


@dataclass
class Moved:
    """What `move_back` did, per id: `moved` are the ids whose MULTI ran (of them,
    `removed` left the processing set and `pushed` went onto the pending list); `failed`
    are the ids it could not change or could not confirm, for `reason`."""

    moved: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    pushed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    reason: str = ""


def queue_keys(profile: Profile) -> dict[str, str]:
    """The keys a move touches, by role (`processing`, `pending`), as the profile names them."""
    keys = profile.queue.redis_keys if profile.queue else {}
    return {role: keys[role] for role in KEY_TYPES if role in keys}


def check_keys(profile: Profile) -> None:
    """Redis answers and each queue key a move touches has the type the move needs:
    checked before a reset changes its table, so a Redis that cannot take the other half
    refuses the whole change (ProbeError) instead of leaving the stores out of step."""
    with client(profile) as connection:
        for role, key in queue_keys(profile).items():
            kind = connection.type(key)
            if kind not in {KEY_TYPES[role], "none"}:
                raise ProbeError(
                    f"queue.redis_keys.{role}: {key} is a {kind}, expected a {KEY_TYPES[role]}"
                )


def positions(profile: Profile, ids: Sequence[str]) -> pd.DataFrame:
    """Per id (the index), whether the processing set holds it and whether the pending
    list does, as a plan shows them; a key the profile does not name is a column of None."""
    keys = queue_keys(profile)
    frame = pd.DataFrame(index=pd.Index(list(ids), name="id"))
    with client(profile) as connection:
        in_set: list[bool | None] = [None] * len(ids)
        on_list: list[bool | None] = [None] * len(ids)
        if "processing" in keys:
            in_set = [
                bool(found)
                for batch in _batches(ids)
                for found in connection.smismember(keys["processing"], batch)
            ]
        if "pending" in keys:
            listed = _on_list(connection, keys["pending"], ids)
            on_list = [job in listed for job in ids]
    frame["in_processing_set"] = in_set
    frame["on_pending_list"] = on_list
    return frame


def move_back(profile: Profile, moves: Sequence[tuple[str, bool]]) -> Moved:
    """For each `(id, push)`: SREM it from the processing set and, when `push` and the
    profile names a pending list that does not hold it yet, RPUSH it there, the two in one
    MULTI with the other ids of its batch. Never raises for Redis: what it could not do
    (unreachable, a timeout after EXEC was sent) is `failed` with the reason."""
    keys = queue_keys(profile)
    done = Moved()
    try:
        with client(profile) as connection:
            for batch in _batches(moves):
                pushes = [job for job, push in batch if push]
                listed = (
                    _on_list(connection, keys["pending"], pushes) if "pending" in keys else set()
                )
                transaction = connection.pipeline(transaction=True)
                steps: list[tuple[str, str]] = []
                for job, push in batch:
                    if "processing" in keys:
                        transaction.srem(keys["processing"], job)
                        steps.append((job, "removed"))
                    if push and "pending" in keys and job not in listed:
                        transaction.rpush(keys["pending"], job)
                        steps.append((job, "pushed"))
                replies = transaction.execute() if steps else []
                for (job, kind), reply in zip(steps, replies, strict=True):
                    if kind == "pushed" or reply:
                        getattr(done, kind).append(job)
                done.moved += [job for job, _push in batch]
    except ProbeError as exc:
        moved = set(done.moved)
        done.failed = [job for job, _push in moves if job not in moved]
        done.reason = exc.reason
    return done


def _on_list(connection: redis.Redis, key: str, ids: Sequence[str]) -> set[str]:
    """Which of `ids` the list `key` holds (LPOS, Redis 6.0.6 or later), pipelined."""
    found: set[str] = set()
    for batch in _batches(ids):
        reader = connection.pipeline(transaction=False)
        for job in batch:
            reader.lpos(key, job)
        found |= {job for job, at in zip(batch, reader.execute(), strict=True) if at is not None}
    return found


def _batches(items: Iterable) -> Iterator[list]:
    iterator = iter(items)
    while batch := list(itertools.islice(iterator, MOVE_BATCH)):
        yield batch


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
        """Only ids that are still orphans now, each moved by `move_back`."""
        planned = [change["id"] for change in plan.changes]
        still = still_orphans(self.profile, planned)
        moves = [
            (change["id"], change["requeue"]) for change in plan.changes if change["id"] in still
        ]
        moved = move_back(self.profile, moves)
        if moved.failed:
            changed = (
                f"{len(moved.removed)} removed ({moved.removed}), then " if moved.moved else ""
            )
            message = f"{changed}Redis could not be changed for {moved.failed}: {moved.reason}"
            raise ChangedThenFailed(message) if moved.moved else ProbeError(message)
        done = [change for change in plan.changes if change["id"] in set(moved.removed)]
        after = still_orphans(self.profile, planned)
        return Applied(
            changed=len(done),
            before_count=len(still & set(planned)),
            after_count=len(after & set(planned)),
            changes=done,
            skipped=[job for job in planned if job not in still],
            backup={
                "processing_members_removed": moved.removed,
                "pending_pushed": moved.pushed,
            },
            remeasured=True,
        )
