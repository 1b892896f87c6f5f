"""How old is the newest database backup: the recovery point a restore would give now."""

from __future__ import annotations

from opslib import backups
from opslib.clock import utc_now
from opslib.probes import Metric, ProbeError
from opslib.profiles import Profile
from opslib.status import Status


def newest_age(profile: Profile) -> Metric:
    """Seconds since the newest backup was taken (the RPO if the database died now)."""
    found = backups.existing(profile)
    if not found:
        raise ProbeError(f"no backup in {profile.backup_dir()}", Status.CRITICAL)
    newest = found[0]
    age_s = (utc_now() - newest.taken_at).total_seconds()
    return Metric(age_s, f"newest backup {newest.path.name} ({len(found)} kept)")


def last_restore_seconds(profile: Profile) -> Metric:
    """How long the last verified restore of this profile took (the RTO to expect), from
    the audit ledger; UNKNOWN until a restore has been rehearsed."""
    from opslib.archive import Ledger, ledger_exists

    ledger = Ledger() if ledger_exists() else None
    restores = sorted(
        (
            restore
            for action in ("restore_verified", "rollback_database")
            for restore in (ledger.applied_changes(action, profile.name) if ledger else [])
        ),
        key=lambda restore: restore[0],
        reverse=True,
    )
    if not restores:
        raise ProbeError("no verified restore recorded yet: rehearse one with the restore runbook")
    at, changes = restores[0]
    seconds = float(changes[0]["restore_seconds"])
    return Metric(
        seconds,
        f"last verified restore ({changes[0]['into']}, {at:%Y-%m-%d %H:%M} UTC) took {seconds:.1f} s",
    )
