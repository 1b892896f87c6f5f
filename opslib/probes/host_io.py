"""The machine's network connections: what netstat shows when a slow cycle may be waiting
on the network (the disks' traffic is opslib.probes.disk_io). It only reads the kernel's
tables, and never waits.
"""

from __future__ import annotations

from collections import Counter

import pandas as pd
import psutil

from opslib.probes import Metric, ProbeError
from opslib.profiles import Profile


def connections(profile: Profile) -> Metric:
    """Open TCP and UDP connections of this machine, by state."""
    try:
        found = psutil.net_connections(kind="inet")
    except (psutil.AccessDenied, OSError) as exc:
        raise ProbeError(f"the connections cannot be read here: {exc}") from exc
    states = Counter(connection.status for connection in found)
    table = pd.DataFrame(
        sorted(states.items(), key=lambda item: -item[1]), columns=["state", "connections"]
    )
    shown = ", ".join(f"{count} {state}" for state, count in states.most_common(4))
    return Metric(float(len(found)), f"{len(found)} connection(s): {shown or 'none'}", table)
