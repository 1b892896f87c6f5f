"""The emergency-halt flag: whether workers have been told to stop taking jobs."""

from __future__ import annotations

import sqlalchemy as sa

from opslib import db
from opslib.probes import Metric
from opslib.profiles import Profile

ON = "on"


def control_table(profile: Profile) -> sa.TableClause:
    return sa.table(
        profile.halt.table,
        sa.column("key"),
        sa.column("value"),
        sa.column("updated_at", sa.DateTime()),
    )


def halt_value(connection: sa.Connection, profile: Profile) -> tuple[str, object]:
    """(value, updated_at) of the flag; a missing row means not halted."""
    control = control_table(profile)
    row = connection.execute(
        sa.select(control.c.value, control.c.updated_at).where(control.c.key == profile.halt.key)
    ).first()
    return (row[0], row[1]) if row else ("off", None)


def halted(profile: Profile) -> Metric:
    """1 while the pipeline is halted, 0 while it runs."""
    with db.connect(profile) as connection:
        value, since = halt_value(connection, profile)
    if value == ON:
        return Metric(1, f"the pipeline is HALTED (flag {profile.halt.key} set {since} UTC)")
    return Metric(0, "the pipeline is running (halt flag off)")
