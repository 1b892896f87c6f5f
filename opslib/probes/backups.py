"""The backups on disk: which exist, how they are kept, and how old the newest is (the
recovery point a restore would give now); how long the last restore took.

Two kinds share one folder (`backups.dir`) and one set of retention classes: the database
backups (`<profile>-<time>.dump` or `.db`, with a manifest) and the Redis snapshots
(`<profile>-redis-<time>Z.rdb`, with a `.sha256` beside them).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from opslib.clock import utc_now
from opslib.probes import History, Metric, ProbeError
from opslib.profiles import Profile
from opslib.status import Status

STAMP = "%Y%m%dT%H%M%S"
# a Redis snapshot is named by the moment Redis took it (LASTSAVE), in UTC
REDIS_STAMP = f"{STAMP}Z"
REDIS_SUFFIX = ".rdb"


@dataclass(frozen=True)
class Backup:
    path: Path
    taken_at: datetime

    @property
    def manifest_path(self) -> Path:
        return self.path.with_suffix(".manifest.json")

    @property
    def checksum_path(self) -> Path:
        """A Redis snapshot's SHA-256, in `sha256sum` format (`sha256sum -c` checks it)."""
        return self.path.with_name(f"{self.path.name}.sha256")

    @property
    def sidecar(self) -> Path:
        """What describes the backup and goes with it when it is pruned."""
        return self.checksum_path if self.path.suffix == REDIS_SUFFIX else self.manifest_path


def suffix(profile: Profile) -> str:
    """Backup files are `pg_dump` archives for PostgreSQL and database copies for SQLite."""
    return ".db" if profile.provides("sqlite") else ".dump"


def existing(profile: Profile) -> list[Backup]:
    """The profile's database backups on disk, newest first."""
    return _named(profile, f"{profile.name}-", STAMP, suffix(profile))


def redis_existing(profile: Profile) -> list[Backup]:
    """The profile's Redis snapshots on disk, newest first."""
    return _named(profile, f"{profile.name}-redis-", REDIS_STAMP, REDIS_SUFFIX)


def chosen(found: list[Backup], name: str = "") -> Backup | None:
    """The backup a restore uses: the one `name`d, else the newest (`found` is newest first)."""
    matching = [backup for backup in found if backup.path.name == name] if name else found
    return matching[0] if matching else None


def redis_name(profile: Profile, taken_at: datetime) -> str:
    return f"{profile.name}-redis-{taken_at.strftime(REDIS_STAMP)}{REDIS_SUFFIX}"


def _named(profile: Profile, prefix: str, stamp: str, extension: str) -> list[Backup]:
    found = []
    for path in profile.backup_dir().glob(f"{prefix}*{extension}"):
        try:
            taken = datetime.strptime(path.name[len(prefix) : -len(extension)], stamp)
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


def prunable(profile: Profile, found: list[Backup]) -> list[str]:
    """The names of `found` (one kind of backup) that the profile's retention classes do
    not keep now: what a backup run of that kind prunes."""
    settings = profile.backups
    keep = to_keep(found, utc_now(), settings.hourly, settings.daily, settings.weekly)
    return sorted(b.path.name for b in found if b.path not in keep)


def newest_age(profile: Profile) -> Metric:
    """Seconds since the newest backup was taken (the RPO if the database died now)."""
    return _age(existing(profile), f"no backup in {profile.backup_dir()}", "backup")


def redis_newest_age(profile: Profile) -> Metric:
    """Seconds since Redis took the newest snapshot kept in the backup folder (the RPO if
    Redis lost its data now); none at all is CRITICAL."""
    folder = profile.backup_dir()
    missing = f"no Redis backup ({profile.name}-redis-*{REDIS_SUFFIX}) in {folder} (backups.dir)"
    return _age(redis_existing(profile), missing, "Redis backup")


def _age(found: list[Backup], missing: str, what: str) -> Metric:
    if not found:
        raise ProbeError(missing, Status.CRITICAL)
    newest = found[0]
    age_s = (utc_now() - newest.taken_at).total_seconds()
    return Metric(age_s, f"newest {what} {newest.path.name} ({len(found)} kept)")


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
