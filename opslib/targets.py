"""`opslib profile check`: does every target the profile names answer, within its timeout."""

from __future__ import annotations

from opslib.checks import CheckResult
from opslib.probes import ProbeError
from opslib.probes.database import reachable
from opslib.probes.host import disk_free
from opslib.probes.logs import log_files
from opslib.profiles import Profile
from opslib.status import Status


def check_targets(profile: Profile) -> list[CheckResult]:
    """One result per target: CRITICAL/UNKNOWN with the reason when it does not answer."""
    results = []
    if profile.provides("database"):
        try:
            results.append(CheckResult("database", Status.OK, summary=reachable(profile).summary))
        except ProbeError as exc:
            results.append(CheckResult("database", exc.status, summary=exc.reason))
    if profile.targets.logs is not None:
        try:
            files = log_files(profile)
            results.append(
                CheckResult("logs", Status.OK, summary=f"{len(files)} log file(s) match")
            )
        except ProbeError as exc:
            results.append(CheckResult("logs", exc.status, summary=exc.reason))
    if profile.targets.disks:
        try:
            for metric in disk_free(profile):
                results.append(
                    CheckResult(f"disk[{metric.label}]", Status.OK, summary=metric.summary)
                )
        except ProbeError as exc:
            results.append(CheckResult("disks", exc.status, summary=exc.reason))
    return results
