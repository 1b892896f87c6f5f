"""`opslib profile check`: does every target the profile names answer, within its timeout.

Which checks prove that a target answers is the catalogue's `targets:` registry; each
is measured as a runbook step would measure it, and reported as answering (OK) or with
the status its failure deserves. Thresholds are the runbooks' business, not this one's.
"""

from __future__ import annotations

from opslib.checks import CheckResult
from opslib.checks.catalogue import catalogue, target_kinds
from opslib.profiles import Profile
from opslib.profiles.secrets import scrub
from opslib.runbook import Runbook
from opslib.status import Status


def check_targets(profile: Profile) -> list[CheckResult]:
    """One result per target, named by its kind (`database`, `disks[data]`)."""
    runbook = Runbook("profile-check", profile)
    results = []
    for kind in target_kinds().values():
        if not profile.provides(kind.name):
            continue
        for check in kind.answers:
            try:
                metrics = runbook.measure(catalogue()[check])
            except Exception as exc:  # noqa: BLE001 - one bad target must not hide the others
                status = getattr(exc, "status", Status.UNKNOWN)
                results.append(
                    CheckResult(kind.name, status, summary=scrub(getattr(exc, "reason", str(exc))))
                )
                continue
            results += [
                CheckResult(
                    f"{kind.name}[{metric.label}]" if metric.label else kind.name,
                    metric.verdict or Status.OK,
                    summary=scrub(metric.summary),
                )
                for metric in metrics
            ]
    return results
