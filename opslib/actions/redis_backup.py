"""Redis snapshots kept beside the database backups.

`TakeRedisBackup` asks Redis for a snapshot (BGSAVE; one already running is waited for
instead), waits, bounded by `backups.timeout`, until LASTSAVE moves past the value read
before, and copies the RDB file Redis wrote (its place from CONFIG GET dir and
dbfilename) into `backups.dir` as `<profile>-redis-<LASTSAVE, UTC>Z.rdb`, owner-only,
with its SHA-256 beside it in `sha256sum` format, checked by reading the copy back. Old
snapshots go by the same retention classes as the database backups.

The file is read where Redis writes it: Redis must run on this machine (or its folder be
mounted at the same path). When that folder cannot be read, or the file found there was
not written by this save, the plan or the apply says so (UNKNOWN), naming the profile key.

`verify` checks a snapshot against its recorded SHA-256; `redis_restore` rehearses a
restore from it.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import ClassVar

import redis

from opslib.actions import Applied, Plan
from opslib.actions.backup import prune
from opslib.clock import utc_now
from opslib.errors import BackupError
from opslib.probes import ProbeError, backups
from opslib.probes.backups import Backup
from opslib.probes.files import sha256
from opslib.probes.redis import client
from opslib.profiles import Profile
from opslib.profiles.secrets import mask_url

URL_KEY = "targets.redis.url"
RDB_MAGIC = b"REDIS"
POLL_S = 0.05
ALREADY_SAVING = "already in progress"


def rdb_file(connection: redis.Redis) -> Path:
    """Where Redis writes its snapshot: CONFIG GET dir and dbfilename."""
    try:
        folder = connection.config_get("dir").get("dir")
        name = connection.config_get("dbfilename").get("dbfilename")
    except redis.ResponseError as exc:
        raise ProbeError(
            f"Redis refuses CONFIG GET ({exc}), so where it writes its RDB file is unknown "
            f"({URL_KEY})"
        ) from None
    if not folder or not name:
        raise ProbeError(f"Redis names no RDB dir/dbfilename ({URL_KEY})")
    return Path(folder) / name


def readable_here(rdb: Path) -> None:
    """Raise (UNKNOWN) unless this user can read the RDB file, or, before the first
    snapshot, the folder it will be written to."""
    folder_ok = rdb.parent.is_dir() and os.access(rdb.parent, os.R_OK | os.X_OK)
    file_ok = os.access(rdb, os.R_OK) if rdb.exists() else folder_ok
    if not (folder_ok and file_ok):
        raise ProbeError(
            f"cannot read Redis's RDB file {rdb} (CONFIG GET dir/dbfilename of {URL_KEY}): "
            "Redis is not on this machine, or this user may not read its folder"
        )


def _lastsave(connection: redis.Redis) -> int:
    return int(connection.lastsave().timestamp())


def snapshot(connection: redis.Redis, timeout_s: float) -> tuple[int, int, bool]:
    """BGSAVE and wait for it: (LASTSAVE before, LASTSAVE after, whether a save already
    running was waited for)."""
    before = _lastsave(connection)
    # LASTSAVE counts whole seconds: a save ending in the second of the last one would not
    # move it, so start in a later second (bounded: a server clock set back would not do)
    tick = time.monotonic() + 2
    while int(connection.time()[0]) <= before and time.monotonic() < tick:
        time.sleep(POLL_S)
    started = _bgsave(connection)
    waited = not started
    deadline = time.monotonic() + timeout_s
    while True:
        persistence = connection.info("persistence")
        if _lastsave(connection) > before:
            if persistence["rdb_last_bgsave_status"] != "ok":
                raise BackupError("Redis's last BGSAVE failed (rdb_last_bgsave_status: err)")
            return before, _lastsave(connection), waited
        if not persistence["rdb_bgsave_in_progress"] and _lastsave(connection) <= before:
            if not started:  # the running save ended in the second of the last one
                started = _bgsave(connection)
                continue
            status = persistence["rdb_last_bgsave_status"]
            raise BackupError(
                f"BGSAVE ended without a new snapshot (rdb_last_bgsave_status: {status}): "
                "see the Redis log"
            )
        if time.monotonic() > deadline:
            raise BackupError(
                f"Redis did not finish BGSAVE within {timeout_s:g} s (backups.timeout); the "
                "save goes on inside Redis"
            )
        time.sleep(POLL_S)


def _bgsave(connection: redis.Redis) -> bool:
    """Start a snapshot: False when one is already running (it is waited for instead)."""
    try:
        connection.bgsave()
    except redis.ResponseError as exc:
        if ALREADY_SAVING not in str(exc):
            raise BackupError(f"Redis refused BGSAVE: {exc}") from None
        return False
    return True


def copy_with_checksum(rdb: Path, target: Path) -> str:
    """Copy the RDB file to `target` (owner-only, in by rename), write its SHA-256 beside
    it and check the copy against it; returns the digest."""
    partial = target.with_name(f".{target.name}.{os.getpid()}.part")
    digest = hashlib.sha256()
    with open(rdb, "rb") as source:
        size = os.fstat(source.fileno()).st_size
        descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.fchmod(descriptor, 0o600)
        with os.fdopen(descriptor, "wb") as copy:
            first = True
            while chunk := source.read(1 << 20):
                if first and not chunk.startswith(RDB_MAGIC):
                    copy.close()
                    partial.unlink()
                    raise BackupError(f"{rdb} is not an RDB file (no REDIS header)")
                first = False
                digest.update(chunk)
                copy.write(chunk)
            copy.flush()
            os.fsync(copy.fileno())
    if partial.stat().st_size != size or sha256(partial) != digest.hexdigest():
        partial.unlink()
        raise BackupError(f"the copy of {rdb} does not match what was read: nothing kept")
    os.replace(partial, target)
    backup = Backup(target, utc_now())
    descriptor = os.open(backup.checksum_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(descriptor, 0o600)
    with os.fdopen(descriptor, "w") as sidecar:
        sidecar.write(f"{digest.hexdigest()}  {target.name}\n")
    return digest.hexdigest()


def verify(backup: Backup) -> str:
    """The snapshot's SHA-256, if it matches the one recorded beside it; else BackupError."""
    try:
        recorded = backup.checksum_path.read_text().split()[0]
    except (OSError, IndexError):
        raise BackupError(f"{backup.path.name} has no readable checksum beside it") from None
    actual = sha256(backup.path)
    if actual != recorded:
        raise BackupError(
            f"{backup.path.name} does not match its recorded SHA-256 "
            f"({actual[:12]}… against {recorded[:12]}…)"
        )
    return actual


@dataclass
class TakeRedisBackup:
    """BGSAVE, copy the RDB file with its checksum into the backup folder, prune by the
    retention classes."""

    profile: Profile
    needs: ClassVar[str] = "redis_backups"
    name: str = "take_redis_backup"

    def _locate(self) -> Path:
        with client(self.profile) as connection:
            rdb = rdb_file(connection)
        readable_here(rdb)
        return rdb

    def _prunable(self) -> list[str]:
        return backups.prunable(self.profile, backups.redis_existing(self.profile))

    def plan(self) -> Plan:
        rdb = self._locate()
        prunable = self._prunable()
        folder = self.profile.backup_dir()
        return Plan(
            action=self.name,
            target=str(folder),
            summary=f"BGSAVE on Redis {mask_url(self.profile.redis_url())}, copy {rdb} into "
            f"{folder} as {self.profile.name}-redis-<LASTSAVE UTC>Z.rdb with its .sha256, and "
            f"prune {len(prunable)} old Redis backup(s)",
            changes=(
                {"create": f"{self.profile.name} Redis snapshot with SHA-256", "from": str(rdb)},
                {"prune": prunable},
            ),
        )

    def apply(self, plan: Plan) -> Applied:
        started = time.monotonic()
        folder = self.profile.backup_dir()
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        timeout_s = self.profile.backups.timeout
        with one_at_a_time(folder / f".{self.profile.name}-redis-backup.lock", timeout_s):
            with client(self.profile) as connection:
                rdb = rdb_file(connection)
                readable_here(rdb)  # checked again: Redis may have been reconfigured since
                previous, lastsave, joined = snapshot(connection, timeout_s)
            return self._keep(plan, rdb, previous, lastsave, joined, started)

    def _keep(
        self, plan: Plan, rdb: Path, previous: int, lastsave: int, joined: bool, started: float
    ) -> Applied:
        """Copy the snapshot Redis wrote, prune, and check the result from disk."""
        folder = self.profile.backup_dir()
        try:
            written = rdb.stat().st_mtime
        except OSError:
            written = None
        if written is None or written < previous:
            found = "is not here" if written is None else "was not written by this save"
            raise BackupError(
                f"after the save, {rdb} {found}: Redis ({URL_KEY}) is not on this machine"
            )
        taken_at = datetime.fromtimestamp(lastsave, UTC).replace(tzinfo=None)
        target = folder / backups.redis_name(self.profile, taken_at)
        if target.exists():
            raise BackupError(f"{target.name} already exists: another run took this snapshot")
        digest = copy_with_checksum(rdb, target)
        pruned = prune(
            self.profile, lambda: backups.redis_existing(self.profile), plan.changes[1]["prune"]
        )
        # measured again from disk: the newest snapshot is this one, and it verifies
        newest = backups.redis_existing(self.profile)
        verified = bool(newest) and newest[0].path == target and verify(newest[0]) == digest
        return Applied(
            changed=1 + len(pruned),
            before_count=1,
            after_count=0 if verified else 1,
            changes=[
                {
                    "created": target.name,
                    "sha256": digest,
                    "bytes": target.stat().st_size,
                    "lastsave": taken_at.isoformat(),
                    "waited_for_running_save": joined,
                    "seconds": round(time.monotonic() - started, 2),
                },
                {"pruned": pruned},
            ],
            skipped=sorted(set(plan.changes[1]["prune"]) - set(pruned)),
            backup={"redis_lastsave_before": datetime.fromtimestamp(previous, UTC).isoformat()},
            remeasured=True,
        )


@contextmanager
def one_at_a_time(path: Path, timeout_s: float) -> Iterator[None]:
    """An flock held for the body: two runs backing up one profile's Redis at once (the
    30-minute schedule meeting the evening wrap) take one snapshot each, in turn."""
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise BackupError(
                        f"another Redis backup still holds {path.name} after {timeout_s:g} s "
                        "(backups.timeout)"
                    ) from None
                time.sleep(POLL_S)
        yield
    finally:
        os.close(descriptor)  # closing drops the lock
