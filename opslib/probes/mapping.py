"""Does the profile's queue mapping mean something in the live database: `opslib profile
check` reads it before any runbook does, so a misspelt column, a time stored another way
than declared or a status value no role names is one line naming the profile key, not a
morning of wrong numbers.

Every table and column the mapping names must be there (a miss names the closest real
column); a sample of each time column must read under the declared encoding; every
status value present must belong to a role, or is named as counted nowhere.
"""

from __future__ import annotations

import sqlalchemy as sa

from opslib.probes import Metric, ProbeError
from opslib.probes.queue_table import ROLES, TIME_ROLES, QueueTable
from opslib.profiles import Profile
from opslib.status import Status

STATUS_SAMPLE = 100


def _unmapped_statuses(connection: sa.Connection, queue: QueueTable) -> list[object]:
    status = queue.column("status")
    query = sa.select(status).select_from(queue.source).distinct().limit(STATUS_SAMPLE)
    named = {str(value) for role in ROLES for value in getattr(queue.config.statuses, role)}
    # NULL is no state a profile could name (and sorts with nothing)
    values = (value for (value,) in connection.execute(query) if value is not None)
    return sorted(str(value) for value in values if str(value) not in named)


def queue_mapping(profile: Profile) -> list[Metric]:
    """One result per part of the mapping: the columns, each time column's encoding, and
    the status values; a part that does not hold is UNKNOWN (or WARNING for status values
    counted nowhere) naming the profile key."""
    queue = QueueTable.of(profile)
    with queue.reading(profile) as connection:
        missing = [
            Metric(None, wrong, label=role, verdict=Status.UNKNOWN)
            for role, wrong in queue.missing(connection).items()
        ]
        if missing:
            return missing
        metrics = [
            Metric(
                len(queue.mapped), f"{len(queue.mapped)} mapped column(s) found", label="columns"
            )
        ]
        for role in (role for role in TIME_ROLES if queue.has(role)):
            try:
                encoding = queue.encoding(connection, role)
            except ProbeError as exc:
                metrics.append(Metric(None, exc.reason, label=role, verdict=Status.UNKNOWN))
                continue
            shown = encoding.kind + (" with a time zone" if encoding.aware else "")
            empty = "" if queue.sampled(connection, role) else " (no value yet: like the others)"
            metrics.append(Metric(0, f"queue.columns.{role} reads as {shown}{empty}", label=role))
        if queue.has("status"):
            unmapped = _unmapped_statuses(connection, queue)
            metrics.append(
                Metric(
                    len(unmapped),
                    "every status value present belongs to a role"
                    if not unmapped
                    else f"queue.statuses: value(s) {', '.join(map(repr, unmapped))} belong to no "
                    "role and are counted nowhere",
                    label="statuses",
                    verdict=Status.WARNING if unmapped else Status.OK,
                )
            )
    return metrics
