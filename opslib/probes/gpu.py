"""NVIDIA GPUs through NVML (nvidia-ml-py, imported as `pynvml`): memory used on each
device with the processes holding it, and temperature with utilization, power, ECC errors
and the reasons the clocks are held back.

pynvml is looked up when a check runs, not when this module loads: opslib must import on
hosts without it, and tests put a stand-in into `sys.modules`. A host without the driver
is UNKNOWN with the reason; a device that fails is UNKNOWN on its own while the others are
still reported; a reading a card does not support (consumer cards have no ECC) is n/a.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
from collections.abc import Callable, Iterator, Sequence
from types import ModuleType
from typing import Any

import humanfriendly
import pandas as pd

from opslib.probes import Metric, ProbeError, processes
from opslib.profiles import Profile
from opslib.status import Status

NOT_AVAILABLE = "n/a"

# Why NVML did not start, by pynvml exception class, in words an operator can act on.
INIT_FAILURES = {
    "NVMLError_LibraryNotFound": "NVIDIA driver library not found (no GPU on this host?)",
    "NVMLError_DriverNotLoaded": "NVIDIA driver not loaded (no GPU, or the module failed to load)",
    "NVMLError_NoPermission": "no permission to open the GPU devices",
    "NVMLError_LibRmVersionMismatch": "driver library and kernel module differ (reboot after the driver update?)",
}

# Bits of nvmlDeviceGetCurrentClocksEventReasons, by pynvml constant name.
THROTTLE_REASONS = {
    "nvmlClocksEventReasonGpuIdle": "idle",
    "nvmlClocksEventReasonApplicationsClocksSetting": "application clocks setting",
    "nvmlClocksEventReasonSwPowerCap": "power cap",
    "nvmlClocksEventReasonHwSlowdown": "hardware slowdown",
    "nvmlClocksEventReasonSyncBoost": "sync boost",
    "nvmlClocksEventReasonSwThermalSlowdown": "thermal (software)",
    "nvmlClocksEventReasonHwThermalSlowdown": "thermal (hardware)",
    "nvmlClocksEventReasonHwPowerBrakeSlowdown": "power brake",
    "nvmlClocksEventReasonDisplayClockSetting": "display clock setting",
}

# Reads one device (pynvml, its handle, its name) into a Metric without a label.
DeviceReader = Callable[[ModuleType, Any, str], Metric]


def memory(profile: Profile) -> list[Metric]:
    """Percent of memory used on each GPU, naming the compute process that holds the most;
    the table lists every compute process by memory used."""
    return _each_device(profile, _read_memory)


def free_memory(profile: Profile) -> list[Metric]:
    """Bytes of memory still free on each GPU: what the next job can allocate."""
    return _each_device(profile, _read_free)


@dataclasses.dataclass(frozen=True)
class DeviceMemory:
    """One GPU's memory with the compute processes holding it (`holders` None where the
    driver does not list them)."""

    index: int
    name: str
    total: int
    free: int
    holders: tuple[GpuProcess, ...] | None


def device_memory(profile: Profile) -> list[DeviceMemory]:
    """Memory of each GPU the profile selects, for a fix that must know who holds it; any
    GPU that cannot be read fails the whole reading (a fix acts on all of it or none)."""
    with _session() as nvml:
        count, indexes = _selected(nvml, profile)
        readings = []
        for index in indexes:
            if not 0 <= index < count:
                raise ProbeError(f"GPU {index} not found: NVML sees {count} GPU(s)")
            try:
                handle = nvml.nvmlDeviceGetHandleByIndex(index)
                name = _text(nvml.nvmlDeviceGetName(handle))
                info = nvml.nvmlDeviceGetMemoryInfo(handle)
                holders = _holders(nvml, handle)
            except nvml.NVMLError as exc:
                raise ProbeError(f"GPU {index} could not be read: {exc}") from None
            readings.append(DeviceMemory(index, name, info.total, info.free, holders))
        return readings


def temperature(profile: Profile) -> list[Metric]:
    """Temperature of each GPU in °C; the table shows utilization, power, ECC error counts
    and active throttle reasons, n/a where the card does not report one."""
    return _each_device(profile, _read_temperature)


@contextlib.contextmanager
def _session() -> Iterator[ModuleType]:
    """pynvml, initialised for the duration; every way NVML cannot start is a ProbeError."""
    try:
        nvml = importlib.import_module("pynvml")
    except ImportError:
        raise ProbeError("NVML not available: nvidia-ml-py is not installed") from None
    try:
        nvml.nvmlInit()
    except nvml.NVMLError as exc:
        reason = INIT_FAILURES.get(type(exc).__name__, str(exc))
        raise ProbeError(f"NVML not available: {reason}") from None
    try:
        yield nvml
    finally:
        with contextlib.suppress(nvml.NVMLError):  # a failed shutdown must not hide readings
            nvml.nvmlShutdown()


def _each_device(profile: Profile, read: DeviceReader) -> list[Metric]:
    """One metric per GPU the profile selects (`targets.gpu.devices`, else all)."""
    with _session() as nvml:
        count, indexes = _selected(nvml, profile)
        return [_read_device(nvml, index, count, read) for index in indexes]


def _selected(nvml: ModuleType, profile: Profile) -> tuple[int, Sequence[int]]:
    """How many GPUs NVML sees, and the indexes the profile selects (`targets.gpu.devices`,
    else all); none at all is a failure to read, never an empty (healthy) reading."""
    try:
        count = nvml.nvmlDeviceGetCount()
    except nvml.NVMLError as exc:
        raise ProbeError(f"NVML could not count the GPUs: {exc}") from None
    if count == 0:
        raise ProbeError("NVML is loaded but found no GPU on this host")
    target = profile.targets.gpu
    return count, target.devices if target is not None and target.devices else range(count)


def _read_device(nvml: ModuleType, index: int, count: int, read: DeviceReader) -> Metric:
    """The reader's metric for one device, or UNKNOWN with NVML's reason (a lost GPU)."""
    label = f"gpu{index}"
    if not 0 <= index < count:
        return Metric(
            None,
            f"GPU {index} not found: NVML sees {count} GPU(s)",
            label=label,
            verdict=Status.UNKNOWN,
        )
    try:
        handle = nvml.nvmlDeviceGetHandleByIndex(index)
        metric = read(nvml, handle, _text(nvml.nvmlDeviceGetName(handle)))
    except nvml.NVMLError as exc:
        return Metric(
            None, f"GPU {index} could not be read: {exc}", label=label, verdict=Status.UNKNOWN
        )
    return dataclasses.replace(metric, label=label)


def _text(value: str | bytes) -> str:
    """Older nvidia-ml-py releases return NVML's strings as bytes."""
    return value.decode(errors="replace") if isinstance(value, bytes) else value


def _optional(nvml: ModuleType, call: Callable[..., Any], *args: Any) -> Any:
    """A reading the device or driver may lack: None then, instead of failing the device.
    An unversioned call newer than the driver raises NVMLLibraryMismatchError."""
    try:
        return call(*args)
    except (
        nvml.NVMLError_NotSupported,
        nvml.NVMLError_FunctionNotFound,
        nvml.NVMLLibraryMismatchError,
    ):
        return None


@dataclasses.dataclass(frozen=True)
class GpuProcess:
    """A compute process on a GPU; `used_bytes` is None where the driver hides it (WDDM),
    `info` None once the process has gone."""

    pid: int
    used_bytes: int | None
    info: processes.ProcessInfo | None

    @property
    def known(self) -> bool:
        return self.info is not None and self.info.command != "?"

    @property
    def summary(self) -> str:
        held = "" if self.used_bytes is None else f" with {_size(self.used_bytes)}"
        return f"pid {self.pid}" + (f" ({self.info.brief})" if self.known else "") + held


def _holders(nvml: ModuleType, handle: Any) -> tuple[GpuProcess, ...] | None:
    """The device's compute processes, most memory first; None where NVML cannot list them."""
    running = _optional(nvml, nvml.nvmlDeviceGetComputeRunningProcesses, handle)
    if running is None:
        return None
    return tuple(
        sorted(
            (GpuProcess(p.pid, p.usedGpuMemory, processes.describe(p.pid)) for p in running),
            key=lambda holder: -1 if holder.used_bytes is None else holder.used_bytes,
            reverse=True,
        )
    )


def _read_free(nvml: ModuleType, handle: Any, name: str) -> Metric:
    info = nvml.nvmlDeviceGetMemoryInfo(handle)
    holders = _holders(nvml, handle)
    summary = f"{name}: {_size(info.free)} free of {_size(info.total)}"
    if holders:
        summary += f"; most held by {holders[0].summary}"
    return Metric(float(info.free), summary)


def _read_memory(nvml: ModuleType, handle: Any, name: str) -> Metric:
    info = nvml.nvmlDeviceGetMemoryInfo(handle)
    used_pct = 100.0 * info.used / info.total if info.total else None
    summary = f"{name}: {_size(info.used)} of {_size(info.total)} used"
    holders = _holders(nvml, handle)
    if holders is None:
        return Metric(used_pct, f"{summary}; processes {NOT_AVAILABLE}")
    table = pd.DataFrame(
        [
            {
                "pid": holder.pid,
                "command": holder.info.command if holder.known else "",
                "used_mib": None if holder.used_bytes is None else round(holder.used_bytes / 2**20),
            }
            for holder in holders
        ],
        columns=["pid", "command", "used_mib"],
    )
    top = f"most by {holders[0].summary}" if holders else "no compute process"
    return Metric(used_pct, f"{summary}; {top}", table)


def _read_temperature(nvml: ModuleType, handle: Any, name: str) -> Metric:
    celsius = _optional(nvml, nvml.nvmlDeviceGetTemperature, handle, nvml.NVML_TEMPERATURE_GPU)
    utilization = _optional(nvml, nvml.nvmlDeviceGetUtilizationRates, handle)
    power_mw = _optional(nvml, nvml.nvmlDeviceGetPowerUsage, handle)
    corrected, uncorrected = (
        # volatile counters: since the driver loaded, so a fault fixed long ago does not linger
        _optional(nvml, nvml.nvmlDeviceGetTotalEccErrors, handle, kind, nvml.NVML_VOLATILE_ECC)
        for kind in (nvml.NVML_MEMORY_ERROR_TYPE_CORRECTED, nvml.NVML_MEMORY_ERROR_TYPE_UNCORRECTED)
    )
    reasons = _throttle_reasons(nvml, handle)
    readings = {
        "utilization": _shown(None if utilization is None else utilization.gpu, "{}%"),
        "memory controller busy": _shown(
            None if utilization is None else utilization.memory, "{}%"
        ),
        "power": _shown(None if power_mw is None else power_mw / 1000, "{:.0f} W"),
        "ECC errors corrected": _shown(corrected),
        "ECC errors uncorrected": _shown(uncorrected),
        "throttle reasons": NOT_AVAILABLE if reasons is None else ", ".join(reasons) or "none",
    }
    table = pd.DataFrame({"value": readings}).rename_axis("reading")
    summary = f"{name} at {_shown(celsius, '{} °C')}"
    if reasons:
        summary += f"; clocks held back: {', '.join(reasons)}"
    return Metric(celsius, summary, table)


def _throttle_reasons(nvml: ModuleType, handle: Any) -> list[str] | None:
    """Active throttle reasons by name; drivers before 535 only know the older call."""
    try:
        mask = nvml.nvmlDeviceGetCurrentClocksEventReasons(handle)
    except nvml.NVMLError_FunctionNotFound:
        mask = _optional(nvml, nvml.nvmlDeviceGetCurrentClocksThrottleReasons, handle)
    except nvml.NVMLError_NotSupported:
        mask = None
    if mask is None:
        return None
    return [text for constant, text in THROTTLE_REASONS.items() if mask & getattr(nvml, constant)]


def _shown(value: float | None, template: str = "{}") -> str:
    return NOT_AVAILABLE if value is None else template.format(value)


def _size(size_bytes: float) -> str:
    return humanfriendly.format_size(size_bytes, binary=True)
