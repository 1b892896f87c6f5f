"""The database backups on disk: which exist, how they are kept, and how old the newest
is (the recovery point a restore would give now); how long the last restore took."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from opslib.clock import utc_now
from opslib.probes import History, Metric, ProbeError
from opslib.profiles import Profile
from opslib.status import Status

STAMP = "%Y%m%dT%H%M%S"


@dataclass(frozen=True)
class Backup:
    path: Path
    taken_at: datetime

    @property
    def manifest_path(self) -> Path:
        return self.path.with_suffix(".manifest.json")


def suffix(profile: Profile) -> str:
    """Backup files are `pg_dump` archives for PostgreSQL and database copies for SQLite."""
    return ".db" if profile.provides("sqlite") else ".dump"


def existing(profile: Profile) -> list[Backup]:
    """The profile's backups on disk, newest first."""
    found = []
    for path in profile.backup_dir().glob(f"{profile.name}-*{suffix(profile)}"):
        try:
            taken = datetime.strptime(path.stem.removeprefix(f"{profile.name}-"), STAMP)
        except ValueError:
            continue
        found.append(Backup(path, taken))
    return sorted(found, key=lambda backup: backup.taken_at, reverse=True)


def to_keep(
    backups: list[Backup], now: datetime, hourly: int, daily: int, weekly: int
) -> set[Path]:
    """Retention classes: the newest backup of each of the last `hourly` hours, `daily`
    days and `weekly` weeks is kept; everything else may be pruned."""
    keep: set[Path] = set()
    for count, period in (
        (hourly, timedelta(hours=1)),
        (daily, timedelta(days=1)),
        (weekly, timedelta(weeks=1)),
    ):
        for index in range(count):
            end = now - period * index
            in_slot = [b for b in backups if end - period < b.taken_at <= end]
            if in_slot:
                keep.add(max(in_slot, key=lambda b: b.taken_at).path)
    return keep


def newest_age(profile: Profile) -> Metric:
    """Seconds since the newest backup was taken (the RPO if the database died now)."""
    found = existing(profile)
    if not found:
        raise ProbeError(f"no backup in {profile.backup_dir()}", Status.CRITICAL)
    newest = found[0]
    age_s = (utc_now() - newest.taken_at).total_seconds()
    return Metric(age_s, f"newest backup {newest.path.name} ({len(found)} kept)")


def last_restore_seconds(profile: Profile, history: History) -> Metric:
    """How long the last verified restore of this profile took (the RTO to expect), from
    the audit ledger; UNKNOWN until a restore has been rehearsed."""
    restores = sorted(
        (
            restore
            for action in ("restore_verified", "rollback_database")
            for restore in history.applied_changes(action, profile.name)
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
