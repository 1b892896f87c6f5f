"""The one clock: every time opslib stores or compares is naive UTC.

Queue tables, the ledger, log windows and plan ages all read it from here, so no part
compares a local time with a UTC one, or an aware time with a naive one.
"""

from __future__ import annotations

from datetime import UTC, datetime


def utc_now() -> datetime:
    """Now, as naive UTC."""
    return datetime.now(UTC).replace(tzinfo=None)
