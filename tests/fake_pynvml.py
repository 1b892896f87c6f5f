"""A stand-in for nvidia-ml-py's `pynvml`, for the calls `opslib.probes.gpu` makes.

Names, signatures, return shapes, constants and the exception hierarchy mirror the real
module (test_gpu checks them against it), so the probe cannot pass here while it would
fail on a GPU host. Configure it with `configure(devices, init_error=...)`; the names that
do not start with `nvml`, `NVML` or `c_nvml` are this module's controls, not NVML's.

A device with `release_on_exit` behaves as a driver does when a process ends: the process
drops out of the compute list and the memory it held is free again.
"""

from __future__ import annotations

import ctypes
import string
import sys
from dataclasses import dataclass, field
from typing import Any

import psutil

GIB = 2**30

NVML_TEMPERATURE_GPU = 0
NVML_VOLATILE_ECC = 0
NVML_MEMORY_ERROR_TYPE_CORRECTED = 0
NVML_MEMORY_ERROR_TYPE_UNCORRECTED = 1

nvmlClocksEventReasonGpuIdle = 0x0000000000000001
nvmlClocksEventReasonApplicationsClocksSetting = 0x0000000000000002
nvmlClocksEventReasonSwPowerCap = 0x0000000000000004
nvmlClocksEventReasonHwSlowdown = 0x0000000000000008
nvmlClocksEventReasonSyncBoost = 0x0000000000000010
nvmlClocksEventReasonSwThermalSlowdown = 0x0000000000000020
nvmlClocksEventReasonHwThermalSlowdown = 0x0000000000000040
nvmlClocksEventReasonHwPowerBrakeSlowdown = 0x0000000000000080
nvmlClocksEventReasonDisplayClockSetting = 0x0000000000000100

NVML_ERROR_UNINITIALIZED = 1
NVML_ERROR_INVALID_ARGUMENT = 2
NVML_ERROR_NOT_SUPPORTED = 3
NVML_ERROR_NO_PERMISSION = 4
NVML_ERROR_DRIVER_NOT_LOADED = 9
NVML_ERROR_LIBRARY_NOT_FOUND = 12
NVML_ERROR_FUNCTION_NOT_FOUND = 13
NVML_ERROR_GPU_IS_LOST = 15
NVML_ERROR_LIB_RM_VERSION_MISMATCH = 18
NVML_ERROR_UNKNOWN = 999

_MESSAGES = {
    NVML_ERROR_UNINITIALIZED: "Uninitialized",
    NVML_ERROR_INVALID_ARGUMENT: "Invalid Argument",
    NVML_ERROR_NOT_SUPPORTED: "Not Supported",
    NVML_ERROR_NO_PERMISSION: "Insufficient Permissions",
    NVML_ERROR_DRIVER_NOT_LOADED: "Driver Not Loaded",
    NVML_ERROR_LIBRARY_NOT_FOUND: "NVML Shared Library Not Found",
    NVML_ERROR_FUNCTION_NOT_FOUND: "Function Not Found",
    NVML_ERROR_GPU_IS_LOST: "GPU is lost",
    NVML_ERROR_LIB_RM_VERSION_MISMATCH: "RM has detected an NVML/RM version mismatch.",
    NVML_ERROR_UNKNOWN: "Unknown Error",
}


class NVMLLibraryMismatchError(Exception):
    """pynvml raises it when an unversioned call is newer than the driver."""


class NVMLError(Exception):
    """Every NVML failure; `NVMLError(code)` builds the subclass for the code, as in pynvml."""

    _valClassMapping: dict[int, type[NVMLError]] = {}
    value: int

    def __new__(cls, value: int) -> NVMLError:
        if cls is NVMLError:
            cls = NVMLError._valClassMapping.get(value, cls)
        error = Exception.__new__(cls)
        error.value = value
        return error

    def __str__(self) -> str:
        return _MESSAGES.get(self.value, f"NVML Error with code {self.value}")


def _define_error_classes() -> None:
    """One subclass per NVML_ERROR_* code, named and built as pynvml does it:
    NVML_ERROR_GPU_IS_LOST becomes NVMLError_GpuIsLost, whose instances have that value."""
    module = sys.modules[__name__]
    for constant in [name for name in dir(module) if name.startswith("NVML_ERROR_")]:
        words = string.capwords(constant.removeprefix("NVML_ERROR_"), "_").replace("_", "")
        code = getattr(module, constant)

        def new(cls: type[NVMLError], *args: Any, code: int = code) -> NVMLError:
            return NVMLError.__new__(cls, code)

        subclass = type(f"NVMLError_{words}", (NVMLError,), {"__new__": new})
        subclass.__module__ = __name__
        setattr(module, subclass.__name__, subclass)
        NVMLError._valClassMapping[code] = subclass


_define_error_classes()


class c_nvmlMemory_t(ctypes.Structure):
    _fields_ = [
        ("total", ctypes.c_ulonglong),
        ("free", ctypes.c_ulonglong),
        ("used", ctypes.c_ulonglong),
    ]


class c_nvmlUtilization_t(ctypes.Structure):
    _fields_ = [("gpu", ctypes.c_uint), ("memory", ctypes.c_uint)]


class nvmlFriendlyObject:
    """What pynvml returns for a process: the struct's fields as attributes."""

    def __init__(self, dictionary: dict[str, Any]) -> None:
        for key, value in dictionary.items():
            setattr(self, key, value)


@dataclass
class FakeDevice:
    """One GPU as NVML would report it. `error` (an NVMLError subclass) is raised by every
    call on the device, `errors` by the named functions only (e.g. NotSupported power)."""

    name: str | bytes = "NVIDIA A100-SXM4-80GB"
    memory_total: int = 80 * GIB
    memory_used: int = 0
    processes: list[tuple[int, int | None]] = field(default_factory=list)  # (pid, bytes)
    temperature_c: int = 45
    utilization_gpu_pct: int = 0
    utilization_memory_pct: int = 0
    power_mw: int = 60_000
    ecc_corrected: int = 0
    ecc_uncorrected: int = 0
    throttle_reasons: int = 0
    error: type[NVMLError] | None = None
    errors: dict[str, type[NVMLError]] = field(default_factory=dict)
    release_on_exit: bool = False  # a process that has ended no longer holds memory

    def holding(self) -> list[tuple[int, int | None]]:
        """The processes holding memory now."""
        if not self.release_on_exit:
            return list(self.processes)
        return [(pid, used) for pid, used in self.processes if _running(pid)]

    def used_now(self) -> int:
        """`memory_used` less what the processes that have ended held."""
        holding = self.holding()
        return self.memory_used - sum(
            used or 0 for pid, used in self.processes if (pid, used) not in holding
        )


def _running(pid: int) -> bool:
    """Whether the process exists and has not exited (a zombie holds no GPU memory)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@dataclass
class FakeState:
    devices: list[FakeDevice] = field(default_factory=list)
    init_error: type[NVMLError] | None = None
    initialized: bool = False
    shutdowns: int = 0


state = FakeState()


def configure(devices: list[FakeDevice], init_error: type[NVMLError] | None = None) -> FakeState:
    """Start afresh with these devices; `init_error` makes nvmlInit fail with it."""
    global state
    state = FakeState(list(devices), init_error)
    return state


def _check_initialized() -> None:
    if not state.initialized:
        raise NVMLError(NVML_ERROR_UNINITIALIZED)


def _device(handle: FakeDevice, function: str) -> FakeDevice:
    _check_initialized()
    failure = handle.error or handle.errors.get(function)
    if failure is not None:
        raise failure()
    return handle


def nvmlInit() -> None:
    if state.init_error is not None:
        raise state.init_error()
    state.initialized = True


def nvmlShutdown() -> None:
    _check_initialized()
    state.initialized = False
    state.shutdowns += 1


def nvmlDeviceGetCount() -> int:
    _check_initialized()
    return len(state.devices)


def nvmlDeviceGetHandleByIndex(index: int) -> FakeDevice:
    _check_initialized()
    if not 0 <= index < len(state.devices):
        raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)
    return _device(state.devices[index], "nvmlDeviceGetHandleByIndex")


def nvmlDeviceGetName(handle: FakeDevice) -> str | bytes:
    return _device(handle, "nvmlDeviceGetName").name


def nvmlDeviceGetMemoryInfo(handle: FakeDevice, version: int | None = None) -> c_nvmlMemory_t:
    device = _device(handle, "nvmlDeviceGetMemoryInfo")
    total, used = device.memory_total, device.used_now()
    return c_nvmlMemory_t(total=total, free=total - used, used=used)


def nvmlDeviceGetComputeRunningProcesses(handle: FakeDevice) -> list[nvmlFriendlyObject]:
    device = _device(handle, "nvmlDeviceGetComputeRunningProcesses")
    return [
        nvmlFriendlyObject(
            {"pid": pid, "usedGpuMemory": used, "gpuInstanceId": 0, "computeInstanceId": 0}
        )
        for pid, used in device.holding()
    ]


def nvmlDeviceGetTemperature(handle: FakeDevice, sensor: int) -> int:
    return _device(handle, "nvmlDeviceGetTemperature").temperature_c


def nvmlDeviceGetUtilizationRates(handle: FakeDevice) -> c_nvmlUtilization_t:
    device = _device(handle, "nvmlDeviceGetUtilizationRates")
    return c_nvmlUtilization_t(gpu=device.utilization_gpu_pct, memory=device.utilization_memory_pct)


def nvmlDeviceGetPowerUsage(handle: FakeDevice) -> int:
    return _device(handle, "nvmlDeviceGetPowerUsage").power_mw


def nvmlDeviceGetTotalEccErrors(handle: FakeDevice, errorType: int, counterType: int) -> int:
    device = _device(handle, "nvmlDeviceGetTotalEccErrors")
    if errorType == NVML_MEMORY_ERROR_TYPE_CORRECTED:
        return device.ecc_corrected
    return device.ecc_uncorrected


def nvmlDeviceGetCurrentClocksEventReasons(handle: FakeDevice) -> int:
    return _device(handle, "nvmlDeviceGetCurrentClocksEventReasons").throttle_reasons


def nvmlDeviceGetCurrentClocksThrottleReasons(handle: FakeDevice) -> int:
    return _device(handle, "nvmlDeviceGetCurrentClocksThrottleReasons").throttle_reasons
