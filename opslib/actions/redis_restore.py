"""A Redis restore rehearsed in a scratch server.

`RehearseRedisRestore` checks a snapshot's SHA-256 and loads a copy of it into a
redis-server of its own, started in a temporary folder and listening only on a Unix socket
(no TCP port), reads what it loaded and stops it: the live Redis is never touched.
Putting a snapshot back into the live Redis stays a person's step (README, "Redis
backups").
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import redis

from opslib.actions import Applied, Plan
from opslib.actions.redis_backup import POLL_S, verify
from opslib.clock import utc_now
from opslib.errors import BackupError
from opslib.probes import backups
from opslib.probes.backups import Backup
from opslib.profiles import Profile


@contextmanager
def scratch_redis(rdb: Path, timeout_s: float = 30.0) -> Iterator[redis.Redis]:
    """A redis-server of its own, in a temporary folder, listening only on a Unix socket,
    started on a copy of `rdb` (the backup itself is never written to); stopped, by its
    pid, and removed on leaving. A file Redis refuses to load is a BackupError with the
    last line of its log."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise BackupError("redis-server not found: install it to rehearse a Redis restore")
    with tempfile.TemporaryDirectory(prefix="opslib-redis-restore-") as name:
        folder = Path(name)
        shutil.copyfile(rdb, folder / "dump.rdb")
        socket = folder / "redis.sock"
        # a list, and secrets never: the scratch server has no password to hide
        command = [binary, "--port", "0", "--unixsocket", str(socket), "--unixsocketperm", "700"]
        command += ["--dir", str(folder), "--dbfilename", "dump.rdb", "--save", ""]
        command += ["--appendonly", "no", "--logfile", str(folder / "redis.log")]
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            yield _loaded(process, socket, folder / "redis.log", timeout_s)
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


def _loaded(
    process: subprocess.Popen[bytes], socket: Path, log: Path, timeout_s: float
) -> redis.Redis:
    """A client once the scratch server has finished loading its file."""
    scratch = redis.Redis(unix_socket_path=str(socket), socket_timeout=5, decode_responses=True)
    deadline = time.monotonic() + timeout_s
    while True:
        if process.poll() is not None:
            lines = log.read_text(errors="replace").strip().splitlines() if log.exists() else []
            last = lines[-1] if lines else "no log"
            raise BackupError(f"the scratch redis-server refused the snapshot: {last}")
        try:
            if socket.exists() and not scratch.info("persistence")["loading"]:
                return scratch
        except (redis.ConnectionError, redis.BusyLoadingError):
            pass
        if time.monotonic() > deadline:
            raise BackupError(f"the scratch redis-server did not load within {timeout_s:g} s")
        time.sleep(POLL_S)


def keyspace(connection: redis.Redis) -> dict[str, int]:
    """Keys per database, as INFO keyspace counts them."""
    return {db: stats["keys"] for db, stats in connection.info("keyspace").items()}


@dataclass
class RehearseRedisRestore:
    """Check a Redis snapshot (the newest, or the named file) against its SHA-256 and load
    it into a scratch redis-server, reporting the keys it holds per database."""

    profile: Profile
    needs: ClassVar[str] = "redis_backups"
    backup_name: str = ""
    name: str = "rehearse_redis_restore"

    def plan(self) -> Plan:
        chosen = backups.chosen(backups.redis_existing(self.profile), self.backup_name)
        if chosen is None:
            missing = (
                f"no Redis backup {self.backup_name or 'at all'} in {self.profile.backup_dir()}"
            )
            return Plan(self.name, self.profile.name, missing, ())
        return Plan(
            action=self.name,
            target=str(chosen.path),
            summary=f"check {chosen.path.name} against its SHA-256 and load it into a scratch "
            "redis-server in a temporary folder, stopped afterwards (the live Redis is not "
            "touched)",
            changes=({"rehearse": chosen.path.name},),
        )

    def apply(self, plan: Plan) -> Applied:
        (change,) = plan.changes
        chosen = Backup(self.profile.backup_dir() / change["rehearse"], utc_now())
        started = time.monotonic()
        digest = verify(chosen)
        with scratch_redis(chosen.path, self.profile.backups.timeout) as scratch:
            loaded = keyspace(scratch)
        return Applied(
            changed=1,
            before_count=0,
            after_count=1,
            changes=[
                {
                    **change,
                    "sha256": digest,
                    "keys": loaded,
                    "restore_seconds": round(time.monotonic() - started, 2),
                }
            ],
            skipped=[],
            backup=None,
        )
