"""I/O per block device over a short sample (the manuals' `iostat -x 1 1`): reads and
writes per second, megabytes per second and how busy each device was. A stage that seems
slow with idle CPUs is often waiting on a disk that is busy all the time."""

from __future__ import annotations

import time

import pandas as pd
import psutil

from opslib.probes import Metric, ProbeError
from opslib.profiles import Profile

MB = 1024 * 1024
VIRTUAL = ("loop", "ram", "zram", "sr")  # not a disk anything waits on


def utilization(profile: Profile, window_s: float = 1.0) -> Metric:
    """The busiest device's share of the sample it spent on I/O (Linux's busy time), with
    a table of every device's rates; no device to read is UNKNOWN, with why."""
    del profile  # the machine opslib runs on
    before = psutil.disk_io_counters(perdisk=True)
    started = time.monotonic()
    time.sleep(window_s)
    after = psutil.disk_io_counters(perdisk=True)
    elapsed = time.monotonic() - started
    rows = []
    for name, now in after.items():
        then = before.get(name)
        if then is None or name.startswith(VIRTUAL):
            continue
        busy = getattr(now, "busy_time", None)
        rows.append(
            {
                "device": name,
                "reads_per_s": round((now.read_count - then.read_count) / elapsed, 1),
                "writes_per_s": round((now.write_count - then.write_count) / elapsed, 1),
                "read_mb_s": round((now.read_bytes - then.read_bytes) / MB / elapsed, 2),
                "write_mb_s": round((now.write_bytes - then.write_bytes) / MB / elapsed, 2),
                "util_pct": None
                if busy is None
                else round(min(100.0, (busy - then.busy_time) / 10 / elapsed), 1),
            }
        )
    if not rows:
        raise ProbeError("no block device statistics to read on this machine (/proc/diskstats)")
    table = pd.DataFrame(rows).sort_values("util_pct", ascending=False, na_position="last")
    top = table.iloc[0]
    if pd.isna(top["util_pct"]):
        return Metric(None, "this system does not report how busy its disks are", table)
    return Metric(
        float(top["util_pct"]),
        f"busiest device {top['device']}: {top['util_pct']:g}% busy over {elapsed:.1f} s, "
        f"{top['read_mb_s']:g} MB/s read, {top['write_mb_s']:g} MB/s written",
        table.reset_index(drop=True),
    )
