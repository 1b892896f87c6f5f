"""SQLite file health: integrity under a time budget, and how the file is laid out."""

from __future__ import annotations

import humanfriendly
import pandas as pd

from opslib.probes import Metric, ProbeError, db
from opslib.probes.sqlite_locks import database_files
from opslib.probes.stages import running_stages
from opslib.profiles import Profile

STORAGE_PRAGMAS = ("journal_mode", "page_size", "page_count", "freelist_count")


def integrity(profile: Profile, full: bool = False, budget_s: float | None = None) -> Metric:
    """Problems SQLite's `quick_check` (or, with `full`, the slower `integrity_check`,
    which also compares every index with its table) reports; 0 when it says `ok`.
    Past `budget_s` (default: the profile's statement timeout) the check is abandoned as
    UNKNOWN: an unfinished check proves nothing either way."""
    pragma = "integrity_check" if full else "quick_check"
    if full:
        _refuse_while_stages_write(profile, "a full integrity_check")
    try:
        with db.connect(profile, statement_timeout=budget_s) as connection:
            rows = [row[0] for row in connection.exec_driver_sql(f"PRAGMA {pragma}")]
    except ProbeError as exc:
        if "did not finish" not in exc.reason:
            raise
        budget = budget_s or profile.targets.database.statement_timeout
        raise ProbeError(
            f"{pragma} not finished in {budget:g} s; give it a larger budget_s"
        ) from None
    problems = [] if rows == ["ok"] else rows
    if not problems:
        return Metric(0, f"{pragma}: ok")
    return Metric(
        len(problems),
        f"{pragma} found {len(problems)} problem(s): {problems[0]}",
        pd.DataFrame({"problem": problems}),
    )


def _refuse_while_stages_write(profile: Profile, what: str) -> None:
    """In rollback-journal mode a long read holds a SHARED lock every commit waits behind:
    opslib must not become the competing reader the manual warns about."""
    running = running_stages(profile)
    if not running:
        return
    with db.connect(profile) as connection:
        mode = connection.exec_driver_sql("PRAGMA journal_mode").scalar_one()
    if mode != "wal":
        raise ProbeError(
            f"not run: {', '.join(running)} is writing, and in {mode} journal mode {what} "
            "would hold a read lock its commits wait behind; run it when the pipeline is idle"
        )


def storage(profile: Profile) -> Metric:
    """Share of the file that is free pages (what VACUUM would give back), with the journal
    mode, page counts and the sizes of the file and its WAL."""
    with db.connect(profile) as connection:
        facts = {
            pragma: connection.exec_driver_sql(f"PRAGMA {pragma}").scalar_one()
            for pragma in STORAGE_PRAGMAS
        }
    sizes = {
        path.name: path.stat().st_size
        for path in database_files(profile.database_path())
        if path.exists()
    }
    free_pct = 100.0 * facts["freelist_count"] / facts["page_count"] if facts["page_count"] else 0.0
    table = pd.DataFrame(
        [{"fact": key, "value": str(value)} for key, value in facts.items()]
        + [
            {"fact": f"size of {name}", "value": humanfriendly.format_size(size)}
            for name, size in sizes.items()
        ]
    )
    total = humanfriendly.format_size(sum(sizes.values()))
    return Metric(
        free_pct,
        f"{facts['journal_mode']} journal, {total} on disk, {free_pct:.1f}% free pages",
        table,
    )
