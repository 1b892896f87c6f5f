"""The machine a benchmark ran on, in one line, so its figures can be read elsewhere."""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path


def _first(path: str, prefix: str) -> str | None:
    file = Path(path)
    if not file.exists():
        return None
    for line in file.read_text(encoding="utf-8").splitlines():
        if line.startswith(prefix):
            return line.split(":", 1)[1].strip()
    return None


def describe() -> str:
    """`machine: nproc 2, <CPU model>, 23.5 GiB RAM, Linux <release>, Python 3.11.7 (<exe>)`."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    model = _first("/proc/cpuinfo", "model name") or platform.processor() or "unknown CPU"
    memory = _first("/proc/meminfo", "MemTotal")
    ram = f"{int(memory.split()[0]) / 2**20:.1f} GiB RAM" if memory else "unknown RAM"
    return (
        f"machine: nproc {cpus}, {model}, {ram}, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()} ({sys.executable})"
    )
