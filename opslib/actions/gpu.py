"""Free GPU memory by ending the processes that hold it, each by pid, never a broad kill.

The video manual's out-of-memory recovery runs `fuser -k /dev/nvidia0`: every process
with the device open, whatever it is. Here a GPU is a candidate only when its free memory
is under the `gpu_free_memory` warning (the manual's 4 GB rule), the plan names each
process holding memory on it (pid, command, user, memory held) and only a process whose
command line matches `targets.gpu.terminable` is planned; any other holder is listed as
left alone and never signalled. SIGKILL follows a SIGTERM that was ignored only when the
plan says so (`escalate`). NVML is read again afterwards: the fix worked when the planned
processes no longer hold memory.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any, ClassVar

import humanfriendly
import pandas as pd

from opslib.actions import Applied, Plan
from opslib.checks.catalogue import catalogue
from opslib.probes import ProbeError, processes
from opslib.probes.gpu import DeviceMemory, GpuProcess, device_memory
from opslib.profiles import Profile

CHECK = "gpu_free_memory"
ALLOWLIST_KEY = "targets.gpu.terminable"


def _size(size_bytes: float | None) -> str:
    return "?" if size_bytes is None else humanfriendly.format_size(size_bytes, binary=True)


@dataclass
class FreeGpuMemory:
    """End the terminable processes holding memory on each GPU short of free memory, or
    with `pid` only that process, wherever it holds memory. `escalate`: SIGKILL a process
    still running `grace_s` after SIGTERM (otherwise it is reported, not killed)."""

    profile: Profile
    needs: ClassVar[str] = "gpu"
    pid: int = 0
    escalate: bool = False
    grace_s: float = 10.0
    name: str = "free_gpu_memory"

    def _short(self, device: DeviceMemory) -> str | None:
        """Why the device needs memory freed (its free memory against the warning), or None."""
        settings = self.profile.check_settings(CHECK, f"gpu{device.index}")
        warning, _ = catalogue()[CHECK].thresholds(settings.warning, settings.critical)
        if warning is None or not warning.alerts(device.free):
            return None
        return f"{_size(device.free)} free of {_size(device.total)} ({CHECK} warning: {warning})"

    def _refusal(self, holder: GpuProcess) -> str:
        """Why this holder may not be signalled ('' when it may)."""
        if holder.pid == os.getpid():
            return "this run itself"
        if processes.in_container():  # NVML names host pids; /proc here holds others
            return "opslib runs in its own pid namespace: NVML's pid cannot be matched here"
        if not holder.known or holder.info.started is None:
            return "gone, or not readable by this user: its command line cannot be checked"
        allowlist = self.profile.targets.gpu.terminable if self.profile.targets.gpu else []
        if not processes.first_match(holder.info.command, allowlist):
            return f"not in {ALLOWLIST_KEY}"
        return ""

    def plan(self) -> Plan:
        devices = device_memory(self.profile)
        rows: list[dict[str, Any]] = []
        notes = []
        for device in devices:
            short = self._short(device)
            if not short and not self.pid:
                continue
            if short:
                notes.append(f"gpu{device.index} has {short}")
            if device.holders is None:
                notes.append(f"NVML does not list the processes on gpu{device.index}")
                continue
            if not device.holders:
                notes.append(f"no compute process holds memory on gpu{device.index}")
            for holder in device.holders:
                if self.pid and holder.pid != self.pid:
                    continue
                rows.append(self._row(device, holder, short or "chosen by pid"))
        if self.pid and not rows:
            raise ProbeError(f"pid {self.pid} holds no memory on the GPUs this profile selects")
        planned = [row for row in rows if not row["left_alone"]]
        if self.pid and not planned:  # asked for by pid: a refusal must not read as OK
            raise ProbeError(
                f"refusing to signal pid {self.pid} ({rows[0]['command'] or '?'}): "
                f"{rows[0]['left_alone']} in {self.profile.source}"
            )
        summary = self._summary(planned, rows, notes)
        return Plan(
            action=self.name,
            target=", ".join(f"gpu{device.index}" for device in devices),
            summary=summary,
            changes=tuple(
                {key: row[key] for key in ("device", "pid", "started", "command", "user", "signal")}
                for row in planned
            ),
            context=pd.DataFrame(
                rows,
                columns=["device", "pid", "command", "user", "held", "why", "signal", "left_alone"],
            ),
        )

    def _row(self, device: DeviceMemory, holder: GpuProcess, why: str) -> dict[str, Any]:
        refusal = self._refusal(holder)
        info = holder.info
        return {
            "device": device.index,
            "pid": holder.pid,
            "started": None if info is None else info.started,
            "command": "" if info is None else info.command,
            "user": "" if info is None else info.user,
            "held": _size(holder.used_bytes),
            "why": why,
            "signal": "" if refusal else ("SIGTERM, then SIGKILL" if self.escalate else "SIGTERM"),
            "left_alone": refusal,
        }

    def _summary(
        self, planned: list[dict[str, Any]], rows: list[dict[str, Any]], notes: list[str]
    ) -> str:
        def who(row: dict[str, Any]) -> str:
            brief = processes.ProcessInfo(row["pid"], "", row["command"], None, None).brief
            return f"pid {row['pid']} ({brief or '?'}, {row['held']} on gpu{row['device']})"

        if not rows and not notes:
            return f"every GPU has the free memory {CHECK} asks for: nothing to end"
        parts = []
        if planned:
            signal = "SIGTERM, then SIGKILL after " if self.escalate else "SIGTERM, waiting "
            parts.append(
                f"end {len(planned)} process(es) holding GPU memory with {signal}"
                f"{self.grace_s:g} s: {', '.join(map(who, planned))}"
            )
        else:
            parts.append("nothing this runbook may end")
        alone = [row for row in rows if row["left_alone"]]
        if alone:
            parts.append(
                "left alone: " + ", ".join(f"{who(row)}: {row['left_alone']}" for row in alone)
            )
        return "; ".join(parts + notes)

    def apply(self, plan: Plan) -> Applied:
        """Signal each planned process that is still the same process and still holds
        memory on its GPU, then read NVML again until the memory is released (bounded)."""
        before = {device.index: device for device in device_memory(self.profile)}
        outcomes, skipped = [], []
        for change in plan.changes:
            device = before.get(change["device"])
            holding = {h.pid for h in (device.holders or ())} if device else set()
            if change["pid"] not in holding:
                skipped.append(change["pid"])
                outcomes.append({**change, "result": "no longer holds GPU memory"})
                continue
            result = processes.send(change["pid"], change["started"], "SIGTERM", self.grace_s)
            if result == "still running" and change["signal"].endswith("SIGKILL"):
                result = processes.send(change["pid"], change["started"], "SIGKILL", self.grace_s)
                result = "killed" if result == "exited" else f"SIGKILL: {result}"
            if result == "gone before the signal":
                skipped.append(change["pid"])
            outcomes.append({**change, "result": result})
        signalled = [o for o in outcomes if o["pid"] not in skipped]
        after = self._released(signalled)
        still = {(h_device, pid) for h_device, pid, _ in _holding(after)}
        for outcome in outcomes:
            outcome["free_before"] = before[outcome["device"]].free
            outcome["free_after"] = after[outcome["device"]].free
        return Applied(
            changed=sum(o["result"] in {"exited", "killed"} for o in signalled),
            before_count=len(signalled),
            after_count=sum((o["device"], o["pid"]) in still for o in signalled),
            changes=outcomes,
            skipped=skipped,
            # the before-image: who held how much where, as read just before the signals
            backup={
                "processes": [
                    {"device": index, "pid": pid, "used_bytes": used}
                    for index, pid, used in _holding(before)
                ],
                "free_bytes": {f"gpu{index}": device.free for index, device in before.items()},
            },
            remeasured=True,  # the planned processes still holding memory per NVML
        )

    def _released(self, signalled: list[dict[str, Any]]) -> dict[int, DeviceMemory]:
        """NVML read again, waiting up to `grace_s` for the driver to drop the processes
        that exited (it lets go of a process's memory shortly after the process ends)."""
        deadline = time.monotonic() + self.grace_s
        wanted = {(o["device"], o["pid"]) for o in signalled if o["result"] in {"exited", "killed"}}
        while True:
            after = {device.index: device for device in device_memory(self.profile)}
            held = {(index, pid) for index, pid, _ in _holding(after)}
            if not wanted & held or time.monotonic() > deadline:
                return after
            time.sleep(0.2)


def _holding(devices: dict[int, DeviceMemory]) -> list[tuple[int, int, int | None]]:
    return [
        (index, holder.pid, holder.used_bytes)
        for index, device in devices.items()
        for holder in device.holders or ()
    ]
