"""GPU checks through NVML: a stand-in pynvml plays the GPUs (test_stand_in_* keeps it
true to the real module), and the real pynvml shows what a host without a driver gives."""

from __future__ import annotations

import ast
import importlib
import inspect
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import fake_pynvml
import psutil
import pytest
from fake_pynvml import GIB, FakeDevice

from opslib.probes import gpu
from opslib.profiles import load_profile
from opslib.runbook import Finding, Runbook
from opslib.status import Status

# the stand-in's NVML names; its other names (configure, FakeDevice) are test controls
NVML_NAME = re.compile(r"(nvml|NVML|c_nvml)\w+")


@pytest.fixture
def nvml(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    fake_pynvml.configure([])
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml)
    return fake_pynvml


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    """A real process for NVML to name, so the summary shows its command line (read once
    the child has exec'd `sleep`: just forked, it still has the parent's)."""
    process = subprocess.Popen(["sleep", "30"])
    deadline = time.monotonic() + 5
    while psutil.Process(process.pid).cmdline() != ["sleep", "30"] and time.monotonic() < deadline:
        time.sleep(0.01)
    yield process
    process.kill()
    process.wait()


def evaluate(tmp_path: Path, check: str, gpu_target: str = "{}") -> Finding:
    path = tmp_path / "g.yaml"
    path.write_text(f"name: g\ntargets:\n  gpu: {gpu_target}\n")
    return Runbook("t", load_profile(str(path))).evaluate(check)


def test_a_nearly_full_gpu_is_critical_naming_the_process_holding_the_most(
    nvml: ModuleType, sleeper: subprocess.Popen[bytes], tmp_path: Path
) -> None:
    nvml.configure(
        [
            FakeDevice(
                memory_used=int(0.98 * 80 * GIB),
                processes=[(os.getpid(), 2 * GIB), (sleeper.pid, 70 * GIB), (4_000_000, None)],
            )
        ]
    )
    finding = evaluate(tmp_path, "gpu_memory")
    [result] = finding.results
    assert result.status is Status.CRITICAL
    assert round(result.value) == 98
    assert "NVIDIA A100-SXM4-80GB: 78.4 GiB of 80 GiB used" in result.summary
    assert f"most by pid {sleeper.pid} (sleep 30) with 70 GiB" in result.summary
    table = finding.tables[0]
    assert list(table.pid) == [sleeper.pid, os.getpid(), 4_000_000]
    assert table.command[0] == "sleep 30"
    assert table.used_mib[0] == 70 * 1024
    assert table.command[2] == ""  # gone, or in another pid namespace: only its pid


def test_a_gpu_at_40_percent_is_ok(nvml: ModuleType, tmp_path: Path) -> None:
    nvml.configure([FakeDevice(memory_used=32 * GIB)])
    [result] = evaluate(tmp_path, "gpu_memory").results
    assert result.status is Status.OK
    assert result.value == 40.0
    assert result.summary.endswith("; no compute process")


def test_each_gpu_is_reported_on_its_own(nvml: ModuleType, tmp_path: Path) -> None:
    nvml.configure([FakeDevice(memory_used=32 * GIB), FakeDevice(memory_used=78 * GIB)])
    results = evaluate(tmp_path, "gpu_memory").results
    assert [(r.name, r.status) for r in results] == [
        ("gpu_memory[gpu0]", Status.OK),
        ("gpu_memory[gpu1]", Status.CRITICAL),
    ]


def test_devices_limits_the_check_to_those_gpus(nvml: ModuleType, tmp_path: Path) -> None:
    nvml.configure([FakeDevice(memory_used=32 * GIB), FakeDevice(memory_used=78 * GIB)])
    results = evaluate(tmp_path, "gpu_memory", "{devices: [1]}").results
    assert [(r.name, r.status) for r in results] == [("gpu_memory[gpu1]", Status.CRITICAL)]


def test_a_listed_gpu_the_host_does_not_have_is_unknown(nvml: ModuleType, tmp_path: Path) -> None:
    nvml.configure([FakeDevice(memory_used=32 * GIB)])
    results = evaluate(tmp_path, "gpu_memory", "{devices: [0, 3]}").results
    assert [r.status for r in results] == [Status.OK, Status.UNKNOWN]
    assert results[1].summary == "GPU 3 not found: NVML sees 1 GPU(s)"


def test_a_lost_gpu_is_unknown_while_the_other_is_still_reported(
    nvml: ModuleType, tmp_path: Path
) -> None:
    state = nvml.configure(
        [FakeDevice(error=nvml.NVMLError_GpuIsLost), FakeDevice(memory_used=32 * GIB)]
    )
    results = evaluate(tmp_path, "gpu_memory").results
    assert [(r.name, r.status) for r in results] == [
        ("gpu_memory[gpu0]", Status.UNKNOWN),
        ("gpu_memory[gpu1]", Status.OK),
    ]
    assert results[0].value is None
    assert results[0].summary == "GPU 0 could not be read: GPU is lost"
    assert state.shutdowns == 1 and not state.initialized


def test_without_the_nvml_library_the_check_is_unknown_saying_so(
    nvml: ModuleType, tmp_path: Path
) -> None:
    state = nvml.configure([], init_error=nvml.NVMLError_LibraryNotFound)
    [result] = evaluate(tmp_path, "gpu_memory").results
    assert result.status is Status.UNKNOWN
    assert result.summary == (
        "NVML not available: NVIDIA driver library not found (no GPU on this host?)"
    )
    assert state.shutdowns == 0


def test_a_driver_that_sees_no_gpu_is_unknown(nvml: ModuleType, tmp_path: Path) -> None:
    state = nvml.configure([])
    [result] = evaluate(tmp_path, "gpu_temperature").results
    assert result.status is Status.UNKNOWN
    assert result.summary == "NVML is loaded but found no GPU on this host"
    assert state.shutdowns == 1


@pytest.mark.skipif(Path("/proc/driver/nvidia").exists(), reason="this host has an NVIDIA driver")
def test_on_a_host_without_a_driver_the_real_pynvml_gives_unknown(tmp_path: Path) -> None:
    assert importlib.import_module("pynvml") is not fake_pynvml
    [result] = evaluate(tmp_path, "gpu_memory").results
    assert result.status is Status.UNKNOWN
    assert result.summary.startswith("NVML not available: NVIDIA driver")


def test_a_gpu_at_85_degrees_is_a_warning(nvml: ModuleType, tmp_path: Path) -> None:
    nvml.configure([FakeDevice(temperature_c=85, utilization_gpu_pct=97, power_mw=312_400)])
    finding = evaluate(tmp_path, "gpu_temperature")
    [result] = finding.results
    assert (result.name, result.status, result.value) == (
        "gpu_temperature[gpu0]",
        Status.WARNING,
        85,
    )
    assert result.summary == "NVIDIA A100-SXM4-80GB at 85 °C"
    assert finding.table.value.to_dict() == {
        "utilization": "97%",
        "memory controller busy": "0%",
        "power": "312 W",
        "ECC errors corrected": "0",
        "ECC errors uncorrected": "0",
        "throttle reasons": "none",
    }


def test_readings_a_card_lacks_are_na_and_the_temperature_still_judged(
    nvml: ModuleType, tmp_path: Path
) -> None:
    not_supported = nvml.NVMLError_NotSupported
    nvml.configure(
        [
            FakeDevice(
                temperature_c=60,
                errors={
                    "nvmlDeviceGetPowerUsage": not_supported,
                    "nvmlDeviceGetTotalEccErrors": not_supported,
                },
            )
        ]
    )
    finding = evaluate(tmp_path, "gpu_temperature")
    assert finding.results[0].status is Status.OK
    assert finding.table.value["power"] == "n/a"
    assert finding.table.value["ECC errors uncorrected"] == "n/a"


def test_throttle_reasons_are_named(nvml: ModuleType, tmp_path: Path) -> None:
    reasons = nvml.nvmlClocksEventReasonSwPowerCap | nvml.nvmlClocksEventReasonHwThermalSlowdown
    nvml.configure([FakeDevice(temperature_c=92, throttle_reasons=reasons)])
    finding = evaluate(tmp_path, "gpu_temperature")
    [result] = finding.results
    assert result.status is Status.CRITICAL
    assert result.summary.endswith("; clocks held back: power cap, thermal (hardware)")
    assert finding.table.value["throttle reasons"] == "power cap, thermal (hardware)"


def test_a_driver_older_than_535_still_gives_throttle_reasons(
    nvml: ModuleType, tmp_path: Path
) -> None:
    nvml.configure(
        [
            FakeDevice(
                throttle_reasons=nvml.nvmlClocksEventReasonSwThermalSlowdown,
                errors={"nvmlDeviceGetCurrentClocksEventReasons": nvml.NVMLError_FunctionNotFound},
            )
        ]
    )
    finding = evaluate(tmp_path, "gpu_temperature")
    assert finding.table.value["throttle reasons"] == "thermal (software)"


def test_device_names_from_older_bindings_are_decoded(nvml: ModuleType, tmp_path: Path) -> None:
    nvml.configure([FakeDevice(name=b"Tesla T4", memory_total=16 * GIB)])
    [result] = evaluate(tmp_path, "gpu_memory").results
    assert result.summary.startswith("Tesla T4: 0 bytes of 16 GiB used")


def _kind(value: Any) -> str:
    if inspect.isclass(value):
        return "class"
    return "function" if callable(value) else type(value).__name__


def test_stand_in_names_kinds_and_values_match_the_real_pynvml() -> None:
    real = importlib.import_module("pynvml")
    assert real is not fake_pynvml
    for name in filter(NVML_NAME.fullmatch, dir(fake_pynvml)):
        ours, theirs = getattr(fake_pynvml, name), getattr(real, name, None)
        assert _kind(ours) == _kind(theirs), name
        if isinstance(ours, int):
            assert ours == theirs, name
        elif _kind(ours) == "function":
            assert inspect.signature(ours).parameters.keys() == (
                inspect.signature(theirs).parameters.keys()
            ), name
        elif issubclass(ours, BaseException):
            assert [c.__name__ for c in ours.__mro__] == [c.__name__ for c in theirs.__mro__]
            if issubclass(ours, fake_pynvml.NVMLError) and ours is not fake_pynvml.NVMLError:
                assert (ours().value, str(ours())) == (theirs().value, str(theirs())), name
        elif hasattr(ours, "_fields_"):
            assert [f[0] for f in ours._fields_] == [f[0] for f in theirs._fields_], name


def test_stand_in_has_every_nvml_name_the_probe_uses() -> None:
    tree = ast.parse(Path(gpu.__file__).read_text(encoding="utf-8"))
    attributes = {
        node.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == "nvml"
    }
    strings = {  # constants and exception classes the probe names in its tables
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and NVML_NAME.fullmatch(node.value)
    }
    used = attributes | strings
    assert "nvmlDeviceGetMemoryInfo" in used and "NVMLError_LibraryNotFound" in used
    assert sorted(used - set(dir(fake_pynvml))) == []
