"""How busy each GPU is: NVML's utilization, the share of its last sample period in which
a kernel ran. The video manual's KPI: 60-85 % is normal, 85-95 % a warning, above 95 %
the queue must be throttled. Read through the GPU checks' own session and device
selection, so a host without NVML and a lost card are UNKNOWN as they are there.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from opslib.probes import Metric, gpu
from opslib.profiles import Profile


def utilization(profile: Profile) -> list[Metric]:
    """Percent busy of each GPU the profile selects, with its memory controller's share."""
    return gpu._each_device(profile, _read_utilization)


def _read_utilization(nvml: ModuleType, handle: Any, name: str) -> Metric:
    rates = nvml.nvmlDeviceGetUtilizationRates(handle)
    return Metric(
        float(rates.gpu), f"{name}: {rates.gpu}% busy, memory controller {rates.memory}% busy"
    )
