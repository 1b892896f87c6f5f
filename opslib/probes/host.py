"""The machine the pipeline runs on: free disk for the folders the profile names, memory,
load per core, and the processes the profile requires to be running.

Another process can exit or be unreadable (another user's, without root) at any moment:
it is then left out or shows None, it never fails the probe. Nothing here waits except
the CPU sampling window.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import humanfriendly
import pandas as pd
import psutil

from opslib.probes import Metric, ProbeError, processes
from opslib.profiles import Profile

TOP_PROCESSES = 10
LOAD_LABELS = ("1m", "5m", "15m")
NAMED_IN_SUMMARY = 5  # processes a one-line summary lists; the table has them all


def _existing_ancestor(path: Path) -> Path:
    """The folder whose filesystem a not-yet-created path will land on."""
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    raise ProbeError(f"no part of {path} exists")


def disk_free(profile: Profile) -> list[Metric]:
    """Percent free on the filesystem of each `targets.disks` entry, one metric each."""
    metrics = []
    for label, path in profile.disk_paths().items():
        usage = psutil.disk_usage(str(_existing_ancestor(path)))
        free_pct = 100.0 - usage.percent
        metrics.append(
            Metric(
                free_pct,
                f"{humanfriendly.format_size(usage.free)} free of "
                f"{humanfriendly.format_size(usage.total)} ({free_pct:.0f}%) for {path}",
                label=label,
            )
        )
    return metrics


def memory(profile: Profile) -> Metric:
    """Percent of memory in use, with the processes holding most of it. Counted from
    `available`, which includes reclaimable page cache: a machine whose cache fills its
    memory is healthy, one that cannot give a new allocation memory without swapping is not."""
    virtual = psutil.virtual_memory()
    swap = psutil.swap_memory()
    in_use = virtual.total - virtual.available
    in_use_pct = 100.0 * in_use / virtual.total
    swapped = (
        f"swap {humanfriendly.format_size(swap.used)} of {humanfriendly.format_size(swap.total)}"
        if swap.total
        else "no swap"
    )
    summary = (
        f"{humanfriendly.format_size(in_use)} in use, "
        f"{humanfriendly.format_size(virtual.available)} available of "
        f"{humanfriendly.format_size(virtual.total)} ({in_use_pct:.0f}%); {swapped}"
    )
    return Metric(in_use_pct, summary, _largest_processes())


def load(profile: Profile, window_s: float = 0.5) -> list[Metric]:
    """The 1-, 5- and 15-minute load average per CPU this process may use (a container or
    taskset may allow fewer than the machine has); above 1, runnable work waits for a CPU.
    The first metric's table names the busiest processes over `window_s`."""
    cores = len(os.sched_getaffinity(0))
    metrics = [
        Metric(
            average / cores,
            f"load {average:.2f} over {cores} core(s) ({average / cores:.2f} per core)",
            label=label,
        )
        for label, average in zip(LOAD_LABELS, os.getloadavg(), strict=True)
    ]
    metrics[0].table = _busiest_processes(window_s)
    return metrics


def required_processes(profile: Profile, window_s: float = 1.0) -> list[Metric]:
    """How many processes match each `processes.required` pattern, one metric per name.
    Each is listed with its age, CPU over `window_s`, memory and open descriptors: a
    worker that runs but sits at 0% CPU may be stuck, one whose memory or descriptors
    keep growing leaks. All matches share one sampling window, however many there are."""
    required = profile.processes.required
    found = {name: processes.matching([pattern]) for name, pattern in required.items()}
    cpu = processes.cpu_percent([info.pid for infos in found.values() for info in infos], window_s)
    return [_required(name, required[name], infos, cpu) for name, infos in found.items()]


def _required(
    name: str, pattern: str, found: list[processes.ProcessInfo], cpu: dict[int, float]
) -> Metric:
    rows = [row for info in found if (row := _still_running(info, cpu.get(info.pid))) is not None]
    if not rows:
        return Metric(0, f"none running: {pattern}", label=name)
    named = ", ".join(
        f"pid {row['pid']} ({_shown(row['age_min'], ' min')}, {_shown(row['cpu_pct'], '% CPU')})"
        for row in rows[:NAMED_IN_SUMMARY]
    )
    more = f" and {len(rows) - NAMED_IN_SUMMARY} more" if len(rows) > NAMED_IN_SUMMARY else ""
    table = pd.DataFrame(rows).astype({"open_fds": "Int64"})
    return Metric(len(rows), f"{len(rows)} running: {named}{more}", table, label=name)


def _shown(value: float | None, unit: str) -> str:
    return f"?{unit}" if value is None else f"{value:g}{unit}"


def _still_running(info: processes.ProcessInfo, cpu_pct: float | None) -> dict[str, Any] | None:
    """A matched process's table row; None when it exited during the sampling window
    (a zombie waiting for its parent has exited too)."""
    try:
        read = psutil.Process(info.pid).as_dict(["status", "memory_info", "num_fds"])
    except psutil.NoSuchProcess:
        return None
    if read["status"] == psutil.STATUS_ZOMBIE:
        return None
    return _row(
        info,
        age_min=None if info.age_s is None else round(info.age_s / 60, 1),
        cpu_pct=None if cpu_pct is None else round(cpu_pct, 1),
        rss=_rss(read["memory_info"]),
        open_fds=read["num_fds"],
    )


def _largest_processes() -> pd.DataFrame:
    """The processes with the most resident memory, largest first."""
    memory_of = {
        process.pid: process.info["memory_info"]
        for process in psutil.process_iter(["memory_info"])
        if process.info["memory_info"] is not None
    }
    largest = sorted(memory_of, key=lambda pid: memory_of[pid].rss, reverse=True)[:TOP_PROCESSES]
    return pd.DataFrame([_row(info, rss=_rss(memory_of[info.pid])) for info in _described(largest)])


def _busiest_processes(window_s: float) -> pd.DataFrame:
    """The processes that used the most CPU over `window_s`, busiest first (idle ones
    left out: a list of sleeping kernel threads tells nobody anything)."""
    cpu = processes.cpu_percent(psutil.pids(), window_s)
    busy = [pid for pid, pct in cpu.items() if pct > 0]
    busiest = sorted(busy, key=cpu.__getitem__, reverse=True)[:TOP_PROCESSES]
    return pd.DataFrame(
        [_row(info, cpu_pct=round(cpu[info.pid], 1)) for info in _described(busiest)]
    )


def _described(pids: Iterable[int]) -> list[processes.ProcessInfo]:
    """The processes among `pids` that are still there, in the same order."""
    return [info for pid in pids if (info := processes.describe(pid)) is not None]


def _rss(memory_info: Any) -> str | None:
    return None if memory_info is None else humanfriendly.format_size(memory_info.rss)


def _row(info: processes.ProcessInfo, **measured: Any) -> dict[str, Any]:
    """One table row: who the process is around what was measured; the command line
    comes from `describe`, so secrets in it are already masked."""
    return {"pid": info.pid, "user": info.user, **measured, "command": info.command}
