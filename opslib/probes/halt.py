"""The emergency-halt flag: whether workers have been told to stop taking jobs.

The flag is a row of a key/value control table (`key`, `value`, `updated_at`); the
budget's circuit breaker is kept the same way, so both read it through `control_value`.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from opslib.probes import Metric, db
from opslib.probes.timestamps import Encoding, encoding
from opslib.profiles import Profile

ON = "on"


def control_table(name: str) -> sa.TableClause:
    return sa.table(name, sa.column("key"), sa.column("value"), sa.column("updated_at"))


def stamp_encoding(connection: sa.Connection, table: str) -> Encoding:
    """How the control table stores its `updated_at`, to read it and to write it alike."""
    return encoding(connection, control_table(table), "updated_at", "auto", f"{table}.updated_at")


def control_value(
    connection: sa.Connection, table: str, key: str, *, lock: bool = False
) -> tuple[str | None, datetime | None]:
    """(value, updated_at) of one control row; (None, None) when the row is missing.
    `lock` holds the row for the rest of a change's transaction (PostgreSQL)."""
    control = control_table(table)
    query = sa.select(control.c.value, control.c.updated_at).where(control.c.key == key)
    row = connection.execute(query.with_for_update() if lock else query).first()
    if row is None:
        return None, None
    return row[0], stamp_encoding(connection, table).read_one(row[1])


def halt_value(
    connection: sa.Connection, profile: Profile, *, lock: bool = False
) -> tuple[str, object]:
    """(value, updated_at) of the flag; a missing row means not halted."""
    value, since = control_value(connection, profile.halt.table, profile.halt.key, lock=lock)
    return (value or "off", since)


def halted(profile: Profile) -> Metric:
    """1 while the pipeline is halted, 0 while it runs."""
    with db.connect(profile) as connection:
        value, since = halt_value(connection, profile)
    if value == ON:
        return Metric(1, f"the pipeline is HALTED (flag {profile.halt.key} set {since} UTC)")
    return Metric(0, "the pipeline is running (halt flag off)")
