"""PostgreSQL backups that can be trusted: a dump, a manifest taken in the same snapshot,
retention classes, and a restore into a new database verified against the manifest.

The dump (`pg_dump -Fc`) and the manifest (row count and checksum of each key table) read
one exported snapshot, so a later restore is compared with exactly what was dumped, even
while the pipeline keeps writing. Passwords go to the client tools through PGPASSWORD,
never on a command line another user could read.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from datetime import datetime
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import URL, make_url

from opslib.errors import BackupError
from opslib.probes import db
from opslib.probes.backups import STAMP, Backup
from opslib.profiles import Profile
from opslib.profiles.secrets import scrub

# libpq's other options that hold a secret (those it shows masked, besides `password`)
# and has no environment variable for
_OTHER_SECRET_OPTIONS = ("sslpassword", "oauth_client_secret")
CHECKSUM_SQL = "SELECT count(*) AS rows, coalesce(md5(string_agg(t::text, '' ORDER BY t::text)), '') AS checksum FROM {table} AS t"


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
    """A libpq URI without the password, and the child's environment that carries it:
    every local user can read a command line (`ps`), only its owner an environment.
    The password may sit in the URL's userinfo or in its `?password=` parameter;
    `URL.set(password=None)` would keep it (None means "unchanged" there)."""
    parsed = make_url(url)
    if database:
        parsed = parsed.set(database=database)
    unsafe = [option for option in _OTHER_SECRET_OPTIONS if option in parsed.query]
    if unsafe:
        raise BackupError(
            f"the database URL's {', '.join(unsafe)} would go on the client tools' command "
            "line, which every local user can read: set it in a pg_service.conf instead"
        )
    password = _libpq_password(parsed)
    environment = {**os.environ}
    if password:
        environment["PGPASSWORD"] = str(password)
    parsed = parsed._replace(drivername="postgresql", password=None)
    uri = parsed.difference_update_query(["password"]).render_as_string(hide_password=False)
    return uri, environment


def _libpq_password(url: URL) -> str | None:
    """The password libpq would use: a `?password=` over the userinfo's, and of a
    repeated one the last (libpq keeps the last value of any keyword given twice;
    SQLAlchemy hands all of them over as a tuple)."""
    given = url.query.get("password")
    if isinstance(given, tuple):
        given = given[-1] if given else None
    return given or url.password


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
