"""Database reachability, whatever the backend: open, answer `SELECT 1`, time it."""

from __future__ import annotations

import time

import sqlalchemy as sa

from opslib import db
from opslib.probes import Metric
from opslib.profiles import Profile


def reachable(profile: Profile) -> Metric:
    """Seconds the database took to open and answer; unreachable raises CRITICAL."""
    started = time.monotonic()
    with db.connect(profile) as connection:
        connection.execute(sa.text("SELECT 1"))
    elapsed_s = time.monotonic() - started
    return Metric(elapsed_s, f"{profile.database_display()} answered in {elapsed_s * 1000:.0f} ms")
