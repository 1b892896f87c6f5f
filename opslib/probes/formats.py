"""Column formats: values that break a profile's `formats:` rule (a regex), counted and sampled.

Each rule groups the column by value in SQL and tests only the distinct values in Python,
so a 1 GB table with a few hundred months costs one indexed scan, not a regex per row.
"""

from __future__ import annotations

import functools
import re

import pandas as pd
import sqlalchemy as sa

from opslib.probes import Metric, db
from opslib.profiles import Profile
from opslib.profiles.sections import FormatRule

SAMPLE = 10


def _offenders(connection: sa.Connection, rule: FormatRule) -> pd.DataFrame:
    quote = functools.partial(db.quote, connection)
    example = f", min({quote(rule.key)}) AS {quote(f'example_{rule.key}')}" if rule.key else ""
    grouped = pd.read_sql_query(
        sa.text(
            f"SELECT {quote(rule.column)} AS value, count(*) AS rows{example} "
            f"FROM {quote(rule.table)} GROUP BY {quote(rule.column)}"
        ),
        connection,
    )
    if grouped.empty:
        return grouped
    pattern = re.compile(rule.pattern)
    valid = grouped["value"].map(
        lambda value: value is not None and bool(pattern.search(str(value)))
    )
    return grouped[~valid].sort_values("rows", ascending=False)


def violations(profile: Profile) -> list[Metric]:
    """Per rule, the number of rows whose value does not match, with the commonest bad values."""
    metrics = []
    with db.connect(profile) as connection:
        for name, rule in profile.formats.items():
            bad = _offenders(connection, rule)
            count = int(bad["rows"].sum())
            where = f"{rule.table}.{rule.column}"
            summary = (
                f"{count:,} row(s) of {where} break {name} ({len(bad)} distinct value(s), "
                f"e.g. {bad['value'].iloc[0]!r})"
                if count
                else f"every {where} matches {rule.pattern}"
            )
            metrics.append(Metric(count, summary, bad.head(SAMPLE) if count else None, label=name))
    return metrics
