"""TCP listeners: which process listens on each port the profile names (`lsof -i :8001`).

The kernel lists every listening socket of this network namespace (`/proc/net/tcp*`), so
whether a port is listened on is always known; which process owns the socket is read
from the owners' descriptors, which only root may read for another user's process. A
listener whose owner cannot be seen is reported UNKNOWN with that reason, never as fine.
"""

from __future__ import annotations

import pandas as pd
import psutil

from opslib.probes import Metric, ProbeError, processes
from opslib.profiles import Profile
from opslib.status import Status

UNSEEN = "its owner is not visible to this user (reading another user's sockets needs root)"


def listening_sockets() -> list[tuple[str, int, int | None]]:
    """(address, port, pid) of every listening TCP socket; pid None where unseen."""
    try:
        connections = psutil.net_connections(kind="tcp")
    except psutil.AccessDenied:  # macOS and BSD refuse the whole list without root
        raise ProbeError(
            "the listening sockets cannot be read without root on this system"
        ) from None
    return [
        (connection.laddr.ip, connection.laddr.port, connection.pid)
        for connection in connections
        if connection.status == psutil.CONN_LISTEN and connection.laddr
    ]


def listeners(profile: Profile) -> list[Metric]:
    """Per name under `processes.listeners`, the processes listening on its port, each
    named by pid, user and command (one process on IPv4 and IPv6 is listed once)."""
    sockets = listening_sockets()
    metrics = []
    for name, port in profile.processes.listeners.items():
        owners: dict[int, list[str]] = {}
        unseen: list[str] = []
        for address, socket_port, pid in sockets:
            if socket_port != port:
                continue
            if pid is None:
                unseen.append(address)
            else:
                owners.setdefault(pid, []).append(address)
        seen = []
        for pid, addresses in sorted(owners.items()):
            info = processes.describe(pid)
            if info is None or info.user == "?":  # gone meanwhile, or not readable
                unseen += addresses
            else:
                seen.append((info, addresses))
        metrics.append(_metric(name, port, seen, unseen))
    return metrics


def _metric(
    name: str, port: int, seen: list[tuple[processes.ProcessInfo, list[str]]], unseen: list[str]
) -> Metric:
    rows = [
        {
            "port": port,
            "addresses": ", ".join(addresses),
            "pid": info.pid,
            "user": info.user,
            "command": info.command,
        }
        for info, addresses in seen
    ] + [
        {"port": port, "addresses": address, "pid": None, "user": "?", "command": "?"}
        for address in unseen
    ]
    table = pd.DataFrame(rows) if rows else None
    if unseen:
        return Metric(
            None,
            f"{name}: port {port} is listened on ({', '.join(unseen)}) but {UNSEEN}",
            table,
            label=name,
            verdict=Status.UNKNOWN,
        )
    if not seen:
        return Metric(0, f"{name}: nothing listens on port {port}", label=name)
    who = "; ".join(f"pid {info.pid} ({info.user}) {info.brief}" for info, _addresses in seen)
    return Metric(len(seen), f"{name}: port {port} is listened on by {who}", table, label=name)
