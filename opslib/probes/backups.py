"""How old is the newest database backup: the recovery point a restore would give now."""

from __future__ import annotations

from opslib import backups
from opslib.checks import Status
from opslib.probes import Metric, ProbeError
from opslib.probes.queue import utc_now
from opslib.profiles import Profile


def newest_age(profile: Profile) -> Metric:
    """Seconds since the newest backup was taken (the RPO if the database died now)."""
    found = backups.existing(profile)
    if not found:
        raise ProbeError(f"no backup in {profile.backup_dir()}", Status.CRITICAL)
    newest = found[0]
    age_s = (utc_now() - newest.taken_at).total_seconds()
    return Metric(age_s, f"newest backup {newest.path.name} ({len(found)} kept)")
