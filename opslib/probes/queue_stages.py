"""Every job of the queue by stage and state, finished ones included: where the work of
the pipeline stands (the ideas manual's count of ideas per stage). queue_depth counts only
the waiting and running jobs; this reads the whole table, so it belongs to a daily view."""

from __future__ import annotations

import sqlalchemy as sa

from opslib.probes import Metric, ProbeError, db
from opslib.probes.queue_table import QueueTable
from opslib.profiles import Profile

ROLES = ("queued", "processing", "completed", "failed")


def _state(queue: QueueTable) -> sa.ColumnElement:
    """The stored status, or the role a row's timestamps give it (failed before completed)."""
    if queue.has("status"):
        return queue.column("status").label("state")
    cases = []
    for role in ("queued", "processing", "failed", "completed"):
        try:
            cases.append((queue.state(role), role))
        except ProbeError:  # failures cannot be told apart: finished rows stay unnamed
            continue
    return sa.case(*cases, else_="finished").label("state")


def by_stage(profile: Profile) -> Metric:
    """Jobs per stage (rows) and state (columns), over the whole table; the value is the
    number in processing. Without a stage column the states are counted alone."""
    queue = QueueTable.of(profile)
    keys = [queue.column("stage").label("stage")] if queue.has("stage") else []
    state = _state(queue)
    query = (
        sa.select(*keys, state, sa.func.count().label("jobs"))
        .select_from(queue.source)
        .group_by(*keys, state)
    )
    with queue.reading(profile) as connection:
        processing = int(
            connection.execute(
                sa.select(sa.func.count())
                .select_from(queue.source)
                .where(queue.state("processing"))
            ).scalar_one()
        )
        counts = db.frame(connection, query)
    if counts.empty:
        return Metric(0, "the queue holds no job")
    table = (
        counts.pivot_table(
            index="stage", columns="state", values="jobs", fill_value=0, aggfunc="sum"
        )
        if keys
        else counts.set_index("state")[["jobs"]].T
    )
    total = int(counts["jobs"].sum())
    where = f" over {len(table.index)} stage(s)" if keys else ""
    return Metric(processing, f"{processing} of {total} job(s) processing{where}", table)
