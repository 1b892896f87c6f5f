"""The machine the pipeline runs on: free disk for the folders the profile names."""

from __future__ import annotations

from pathlib import Path

import humanfriendly
import psutil

from opslib.probes import Metric, ProbeError
from opslib.profiles import Profile


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
