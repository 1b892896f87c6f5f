"""Data invariants: profile-defined SQL queries that return the rows breaking a rule.

The catalogue of rules lives in the profile (`invariants:`), as data: a new rule is a
line of YAML. Each runs on a read-only connection under the statement timeout.
"""

from __future__ import annotations

from opslib.probes import Metric, ProbeError, db
from opslib.profiles import Profile

SHOWN_ROWS = 20


def violations(profile: Profile) -> list[Metric]:
    """One metric per invariant: how many rows break it, with the first of them."""
    metrics = []
    for name, rows in db.each_query(profile, profile.invariants):
        if isinstance(rows, str):
            metrics.append(
                Metric(None, f"invariant {name} could not be checked: {rows}", label=name)
            )
            continue
        summary = f"{len(rows)} row(s) break {name}" if len(rows) else f"no row breaks {name}"
        metrics.append(
            Metric(len(rows), summary, rows.head(SHOWN_ROWS) if len(rows) else None, label=name)
        )
    if not metrics:
        raise ProbeError(f"{profile.source} defines no invariants")
    return metrics
