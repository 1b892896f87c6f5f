"""PostgreSQL backups that can be trusted: a dump, a manifest taken in the same snapshot,
retention classes, and a restore into a new database verified against the manifest.

The dump (`pg_dump -Fc`) and the manifest (row count and checksum of each key table) read
one exported snapshot, so a later restore is compared with exactly what was dumped, even
while the pipeline keeps writing. Passwords go to the client tools through PGPASSWORD,
never on a command line another user could read.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import BinaryIO

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from opslib.errors import OpslibError
from opslib.probes import db
from opslib.profiles import Profile
from opslib.profiles.secrets import scrub

STAMP = "%Y%m%dT%H%M%S"
CHECKSUM_SQL = "SELECT count(*) AS rows, coalesce(md5(string_agg(t::text, '' ORDER BY t::text)), '') AS checksum FROM {table} AS t"


class BackupError(OpslibError):
    """A dump or restore failed; the message is scrubbed."""


@dataclass(frozen=True)
class Backup:
    path: Path
    taken_at: datetime

    @property
    def manifest_path(self) -> Path:
        return self.path.with_suffix(".manifest.json")


def sha256(path: Path, opener: Callable[..., BinaryIO] = open) -> str:
    """The SHA-256 of a file's bytes (through `opener`: `gzip.open` checks what an archive
    decompresses to), read in chunks: a backup can be larger than memory."""
    digest = hashlib.sha256()
    with opener(path, "rb") as stream:
        while chunk := stream.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _tool(name: str) -> str:
    try:
        bindir = subprocess.run(
            ["pg_config", "--bindir"], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        candidate = Path(bindir) / name
        if candidate.exists():
            return str(candidate)
    except (OSError, subprocess.SubprocessError):
        pass
    found = shutil.which(name)
    if found is None:
        raise BackupError(f"{name} not found: install the PostgreSQL client tools")
    return found


def libpq_target(url: str, database: str | None = None) -> tuple[str, dict[str, str]]:
    """A libpq URI without the password, and the environment that carries it."""
    parsed = make_url(url)
    if database:
        parsed = parsed.set(database=database)
    environment = {**os.environ}
    if parsed.password:
        environment["PGPASSWORD"] = str(parsed.password)
    uri = parsed.set(drivername="postgresql", password=None).render_as_string(hide_password=False)
    return uri, environment


def _run(command: list[str], environment: dict[str, str], timeout_s: float) -> None:
    try:
        subprocess.run(
            command, env=environment, capture_output=True, text=True, timeout=timeout_s, check=True
        )
    except subprocess.TimeoutExpired:
        raise BackupError(
            f"{Path(command[0]).name} did not finish within {timeout_s:g} s"
        ) from None
    except subprocess.CalledProcessError as exc:
        last = (exc.stderr.strip().splitlines() or ["no output"])[-1]
        raise BackupError(f"{Path(command[0]).name} failed: {scrub(last)}") from None


def table_checksums(connection: sa.Connection, tables: list[str]) -> dict[str, dict[str, object]]:
    """Row count and an order-independent checksum of each table's rows."""
    return {
        table: dict(connection.execute(sa.text(CHECKSUM_SQL.format(table=table))).mappings().one())
        for table in tables
    }


def take(profile: Profile, now: datetime) -> Backup:
    """Dump the profile's database with a manifest read in the same snapshot."""
    settings = profile.backups
    folder = profile.backup_dir()
    folder.mkdir(parents=True, exist_ok=True)
    backup = Backup(folder / f"{profile.name}-{now.strftime(STAMP)}.dump", now)
    partial = backup.path.with_suffix(".dump.part")
    uri, environment = libpq_target(profile.database_url())
    with (
        db.engine(profile)
        .connect()
        .execution_options(isolation_level="REPEATABLE READ") as connection
    ):
        snapshot = connection.exec_driver_sql("SELECT pg_export_snapshot()").scalar_one()
        manifest = {
            "taken_at": now.isoformat(),
            "tables": table_checksums(connection, settings.key_tables),
        }
        _run(
            [
                _tool("pg_dump"),
                "--format=custom",
                f"--snapshot={snapshot}",
                f"--file={partial}",
                f"--dbname={uri}",
            ],
            environment,
            settings.timeout,
        )
    backup.manifest_path.write_text(json.dumps(manifest, indent=2, default=str))
    os.replace(partial, backup.path)
    return backup


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


def restore_verified(
    profile: Profile, backup: Backup, database: str
) -> dict[str, dict[str, object]]:
    """Restore into the new database `database` and compare its key tables with the
    backup's manifest; any difference (or a dump pg_restore rejects) raises BackupError."""
    manifest = json.loads(backup.manifest_path.read_text())["tables"]
    _administer(profile, f'CREATE DATABASE "{database}"')
    uri, environment = libpq_target(profile.database_url(), database)
    _run(
        [_tool("pg_restore"), "--no-owner", "--exit-on-error", f"--dbname={uri}", str(backup.path)],
        environment,
        profile.backups.timeout,
    )
    restored_engine = sa.create_engine(
        make_url(profile.database_url()).set(drivername="postgresql+psycopg", database=database)
    )
    with restored_engine.connect() as connection:
        restored = table_checksums(connection, list(manifest))
    restored_engine.dispose()
    mismatched = [table for table in manifest if restored[table] != manifest[table]]
    if mismatched:
        raise BackupError(f"restored {', '.join(mismatched)} differ from the backup's manifest")
    return restored


def drop_database(profile: Profile, database: str) -> None:
    """Remove a restore that failed verification, so nobody points a pipeline at it."""
    _administer(profile, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


def _administer(profile: Profile, statement: str) -> None:
    """Run a CREATE/DROP DATABASE from the server's maintenance database."""
    admin = sa.create_engine(
        make_url(profile.database_url()).set(drivername="postgresql+psycopg", database="postgres"),
        isolation_level="AUTOCOMMIT",
    )
    with admin.connect() as connection:
        connection.execute(sa.text(statement))
    admin.dispose()
