"""SQLite file health: `PRAGMA quick_check` under the profile's statement timeout."""

from __future__ import annotations

import pandas as pd

from opslib import db
from opslib.probes import Metric
from opslib.profiles import Profile

QUICK_CHECK = "PRAGMA quick_check"


def quick_check(profile: Profile) -> Metric:
    """Problems SQLite's quick_check reports (0 when it says `ok`), listed in the table."""
    with db.connect(profile) as connection:
        rows = [row[0] for row in connection.exec_driver_sql(QUICK_CHECK)]
    problems = [] if rows == ["ok"] else rows
    if not problems:
        return Metric(0, "quick_check: ok")
    return Metric(
        len(problems),
        f"quick_check found {len(problems)} problem(s): {problems[0]}",
        pd.DataFrame({"problem": problems}),
    )
