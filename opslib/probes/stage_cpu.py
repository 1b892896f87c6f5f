"""What each running stage's CPU use says about it, in the spots manual's bands: 80-100 %
is a stage at work, 5-15 % one waiting on the database, about 0 % a hung one (which
`stuck_stages` judges once the stage has run long enough to tell)."""

from __future__ import annotations

import pandas as pd

from opslib.probes import Metric, processes
from opslib.profiles import Profile

ACTIVE = 80
WAITING = (5, 15)


def band(cpu: float, idle: float) -> str:
    """The manual's name for this much CPU (100 is one full core)."""
    if cpu >= ACTIVE:
        return "active processing"
    if WAITING[0] <= cpu <= WAITING[1]:
        return "waiting on the database"
    if cpu < idle:
        return "idle: stuck if it lasts (stuck_stages)"
    return "between the manual's bands"


def _waiting_on(profile: Profile, pid: int) -> str:
    """Who holds the lock this stage may wait for (SQLite only; never opens the file)."""
    if not profile.provides("sqlite"):
        return ""
    from opslib.probes.sqlite_locks import describe_holders, scan

    holders = scan(profile)
    blocking = holders[(holders["blocks"] != "") & (holders["pid"] != pid)]
    return "" if blocking.empty else describe_holders(blocking)


def stage_cpu(profile: Profile, window_s: float | None = None) -> list[Metric]:
    """CPU use of each running stage process over `stages.cpu_window`, labelled by its
    stage and named by its band; a stage in the waiting band names the lock holder."""
    stages = profile.stages
    running = [
        (name, info)
        for name, step in stages.steps.items()
        if step.process
        for info in processes.matching([step.process])
    ]
    if not running:
        return [Metric(0, "no stage process is running")]
    cpu = processes.cpu_percent([info.pid for _, info in running], window_s or stages.cpu_window)
    metrics, rows = [], []
    for name, info in running:
        used = cpu.get(info.pid)
        if used is None:
            metrics.append(Metric(None, f"stage {name} pid {info.pid}: gone", label=name))
            continue
        named = band(used, stages.idle_cpu_percent)
        holder = _waiting_on(profile, info.pid) if named.startswith("waiting") else ""
        held = f"; the lock: {holder}" if holder else ""
        rows.append({"stage": name, "pid": info.pid, "cpu_pct": round(used, 1), "band": named})
        summary = f"stage {name} pid {info.pid}: {used:.0f}% CPU, {named}{held}"
        metrics.append(Metric(used, summary, label=name))
    if metrics:
        metrics[0].table = pd.DataFrame(rows, columns=["stage", "pid", "cpu_pct", "band"])
    return metrics
