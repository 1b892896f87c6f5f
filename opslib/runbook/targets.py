"""`opslib profile check`: does every target the profile names answer, within its timeout.

Which checks prove that a target answers is the catalogue's `targets:` registry; each
is measured as a runbook step would measure it, and reported as answering (OK) or with
the status its failure deserves. Thresholds are the runbooks' business, not this one's.
Once every target answers, the `meaning` checks read the profile's mapping against them.
"""

from __future__ import annotations

from opslib.checks import CheckResult
from opslib.checks.catalogue import catalogue, meaning_checks, target_kinds
from opslib.profiles import Profile
from opslib.profiles.secrets import scrub
from opslib.runbook import Runbook
from opslib.status import Status


def check_targets(profile: Profile) -> list[CheckResult]:
    """One result per target, named by its kind (`database`, `disks[data]`); then, where
    the targets answered, one per part of the mapping (`queue_mapping[started_at]`)."""
    runbook = Runbook("profile-check", profile)
    results = []
    for kind in target_kinds().values():
        if profile.provides(kind.name):
            for check in kind.answers:
                results += _answer(runbook, check, kind.name)
    if all(result.status is Status.OK for result in results):
        for check in meaning_checks():
            if all(profile.provides(need) for need in catalogue()[check].profile_needs):
                results += _answer(runbook, check, check)
    return results


def _answer(runbook: Runbook, check: str, name: str) -> list[CheckResult]:
    """What the check's probe says, as results named `name` (and each label): OK where it
    measured, its failure's status where it did not."""
    try:
        metrics = runbook.measure(catalogue()[check])
    except Exception as exc:  # noqa: BLE001 - one bad target must not hide the others
        status = getattr(exc, "status", Status.UNKNOWN)
        return [CheckResult(name, status, summary=scrub(getattr(exc, "reason", str(exc))))]
    return [
        CheckResult(
            f"{name}[{metric.label}]" if metric.label else name,
            metric.verdict or Status.OK,
            summary=scrub(metric.summary),
        )
        for metric in metrics
    ]
