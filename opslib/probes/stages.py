"""Pipeline stages that fill a shared table in turn: how far they got, and whether a
running stage process is hung or only waiting for a lock someone else holds."""

from __future__ import annotations

import time

import humanfriendly
import pandas as pd
import sqlalchemy as sa

from opslib.clock import utc_now
from opslib.probes import Metric, ProbeError, db, processes
from opslib.probes.timestamps import encoding
from opslib.profiles import Profile


def coverage(profile: Profile) -> list[Metric]:
    """Per stage, the percentage of rows handled by it or an earlier stage (one scan)."""
    stages = profile.stages
    with db.connect(profile) as connection:
        columns = [db.quote(connection, step.column) for step in stages.steps.values()]
        handled = [
            f"count(CASE WHEN {' OR '.join(f'{c} IS NOT NULL' for c in columns[: i + 1])} THEN 1 END)"
            for i in range(len(columns))
        ]
        total, *counts = connection.execute(
            sa.text(
                f"SELECT count(*), {', '.join(handled)} FROM {db.quote(connection, stages.table)}"
            )
        ).one()
    table = pd.DataFrame(
        {
            "stage": list(stages.steps),
            "handled_so_far": counts,
            "by_this_stage": [counts[0]]
            + [b - a for a, b in zip(counts, counts[1:], strict=False)],
            "rows": total,
        }
    )
    table["coverage_pct"] = (100.0 * table["handled_so_far"] / total).round(2) if total else None
    metrics = []
    for index, row in enumerate(table.itertuples()):
        share = None if not total else 100.0 * row.handled_so_far / total
        summary = (
            f"{row.stage}: {row.handled_so_far:,} of {total:,} rows handled so far ({share:.1f}%), "
            f"{row.by_this_stage:,} by this stage"
            if total
            else f"{stages.table} is empty"
        )
        metrics.append(Metric(share, summary, table if index == 0 else None, label=row.stage))
    return metrics


def _seconds_since_progress(profile: Profile, column: str) -> float | None:
    """Seconds since a row was last stamped in `column`; None when none was or it cannot
    be read. Stamps are read in the column's own encoding (the latest of ISO text of one
    shape, or of epochs, is their maximum, as of timestamps)."""
    table = sa.table(profile.stages.table, sa.column(column))
    try:
        with db.connect(profile) as connection:
            latest = connection.execute(sa.select(sa.func.max(table.c[column]))).scalar_one()
            stamps = encoding(connection, table, column, "auto", f"stages: {column}")
    except ProbeError:
        return None
    stamp = stamps.read_one(latest)
    return None if stamp is None else (utc_now() - stamp).total_seconds()


def running_stages(profile: Profile) -> list[str]:
    """`stage NAME pid N` for each stage process running now (none without `stages`)."""
    if profile.stages is None:
        return []
    return [
        f"stage {name} pid {info.pid}"
        for name, step in profile.stages.steps.items()
        if step.process
        for info in processes.matching([step.process])
    ]


def _running(profile: Profile) -> list[tuple[str, processes.ProcessInfo]]:
    """(stage, process) for each stage process running now."""
    return [
        (name, info)
        for name, step in profile.stages.steps.items()
        if step.process
        for info in processes.matching([step.process])
    ]


def _size(rss: int | None) -> str | None:
    return None if rss is None else humanfriendly.format_size(rss)


def memory(profile: Profile) -> list[Metric]:
    """Resident memory (RSS) of each running stage process, one result per process
    labelled by its stage; the table lists them all by pid."""
    running = _running(profile)
    if not running:
        return [Metric(0, "no stage process is running")]
    rss = processes.resident_bytes(info.pid for _, info in running)
    table = pd.DataFrame(
        [
            {
                "stage": name,
                "pid": info.pid,
                "rss": _size(rss.get(info.pid)),
                "command": info.command,
            }
            for name, info in running
        ]
    )
    metrics = []
    for name, info in running:
        size = rss.get(info.pid)
        summary = (
            f"stage {name} pid {info.pid} uses {_size(size)} resident"
            if size is not None
            else f"stage {name} pid {info.pid}: its memory cannot be read (gone, or another user's)"
        )
        metrics.append(Metric(size, summary, table if not metrics else None, label=name))
    return metrics


def _blocked_by(profile: Profile, pid: int) -> str:
    """The lock holders keeping this stage waiting (SQLite only; never opens the database)."""
    if not profile.provides("sqlite"):
        return ""
    from opslib.probes.sqlite_locks import describe_holders, scan

    holders = scan(profile)
    blocking = holders[(holders["blocks"] != "") & (holders["pid"] != pid)]
    return "" if blocking.empty else describe_holders(blocking)


def stuck_stages(profile: Profile, window_s: float | None = None) -> Metric:
    """Stage processes running longer than `stages.stuck_after` that show no sign of work:
    CPU near zero over a sampling window, a log that stopped growing, or rows that stopped
    being stamped. Each is listed with what holds the lock it may be waiting for."""
    stages = profile.stages
    running = _running(profile)
    if not running:
        return Metric(0, "no stage process is running")
    old_enough = [(name, info) for name, info in running if info.age_s > stages.stuck_after]
    cpu = processes.cpu_percent([info.pid for _, info in old_enough], window_s or stages.cpu_window)
    rss = processes.resident_bytes(info.pid for _, info in running)
    rows = []
    for name, info in running:
        step = stages.steps[name]
        log = profile.stage_log(name)
        log_silent_s = time.time() - log.stat().st_mtime if log and log.exists() else None
        signs = []
        if (name, info) in old_enough:
            if cpu.get(info.pid, 0.0) < stages.idle_cpu_percent:
                signs.append(f"{cpu.get(info.pid, 0.0):.1f}% CPU")
            if log_silent_s is not None and log_silent_s > stages.silent_after:
                signs.append(f"log silent {log_silent_s / 60:.0f} min")
            if step.progress_column:
                # a stamp from before this process started belongs to an earlier run
                since_stamp = _seconds_since_progress(profile, step.progress_column)
                quiet_s = None if since_stamp is None else min(since_stamp, info.age_s)
                if quiet_s is not None and quiet_s > stages.silent_after:
                    signs.append(f"no row stamped for {quiet_s / 60:.0f} min")
        rows.append(
            {
                "stage": name,
                "pid": info.pid,
                "running_min": round(info.age_s / 60, 1),
                "cpu_pct": cpu.get(info.pid),
                "rss": _size(rss.get(info.pid)),
                "log_silent_min": None if log_silent_s is None else round(log_silent_s / 60, 1),
                "stuck_signs": ", ".join(signs),
                "blocked_by": _blocked_by(profile, info.pid) if signs else "",
                "command": info.command,
            }
        )
    table = pd.DataFrame(rows)
    stuck = table[table["stuck_signs"] != ""]
    if stuck.empty:
        return Metric(0, f"{len(table)} stage process(es) running, none stuck", table)
    first = stuck.iloc[0]
    waiting = f"; waiting on {first.blocked_by}" if first.blocked_by else ""
    return Metric(
        len(stuck),
        f"stage {first.stage} pid {first.pid} looks stuck after {first.running_min:g} min "
        f"({first.stuck_signs}){waiting}",
        table,
    )
