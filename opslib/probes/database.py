"""Database reachability, whatever the backend: open, answer a query that must read, time it."""

from __future__ import annotations

import time

import sqlalchemy as sa

from opslib.probes import Metric, db
from opslib.profiles import Profile

# SQLite's `SELECT 1` never touches the file, so it succeeds even on a locked or damaged
# database; reading the schema takes a shared lock and proves the file is a database.
PING = {"sqlite": "SELECT count(*) FROM sqlite_master", "postgresql": "SELECT 1"}


def reachable(profile: Profile) -> Metric:
    """Seconds the database took to open and answer; unreachable raises CRITICAL."""
    started = time.monotonic()
    with db.connect(profile) as connection:
        connection.execute(sa.text(PING[connection.dialect.name]))
    elapsed_s = time.monotonic() - started
    return Metric(elapsed_s, f"{profile.database_display()} answered in {elapsed_s * 1000:.0f} ms")
