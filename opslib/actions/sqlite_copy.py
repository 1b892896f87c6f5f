"""SQLite backups that can be trusted, and a rollback that cannot lose the current file.

A backup is an online copy made with SQLite's backup API inside one read transaction, so
it is a state some commit left, even while a stage keeps committing (in rollback-journal
mode writers wait for the copy to finish; in WAL mode they do not). The copy is checked
with `integrity_check` and described by a manifest: its SHA-256, page count and the row
count of each key table.

A rollback puts a verified backup in place of the live file. It refuses while any process
has the database open (that process would go on writing to the replaced file), keeps the
current file and its journal/WAL exactly as they are, swaps by rename, and verifies the
result against the backup's manifest.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from datetime import datetime
from pathlib import Path

from tqdm.auto import tqdm

from opslib.errors import BackupError, ChangedThenFailed
from opslib.probes import db
from opslib.probes.backups import STAMP, Backup
from opslib.probes.files import sha256
from opslib.probes.sqlite_locks import database_files, describe_holders, scan
from opslib.profiles import Profile

PAGES_PER_STEP = 4096


def describe(path: Path, tables: list[str], timeout_s: float = 5.0) -> dict[str, object]:
    """What a manifest records of a database file: integrity, pages, key-table row counts."""
    with db.sqlite_file(path, readonly=True, busy_s=timeout_s) as connection:
        problems = [row[0] for row in connection.execute("PRAGMA integrity_check")]
        quote = '"{}"'.format
        return {
            "integrity": "ok" if problems == ["ok"] else problems[:5],
            "pages": connection.execute("PRAGMA page_count").fetchone()[0],
            "tables": {
                table: {
                    "rows": connection.execute(f"SELECT count(*) FROM {quote(table)}").fetchone()[0]
                }
                for table in tables
            },
        }


def take(profile: Profile, now: datetime) -> Backup:
    """Copy the live database page by page (with progress) in one read transaction, verify
    the copy, and write it with its manifest."""
    settings = profile.backups
    folder = profile.backup_dir()
    folder.mkdir(parents=True, exist_ok=True)
    backup = Backup(folder / f"{profile.name}-{now.strftime(STAMP)}.db", now)
    partial = backup.path.with_name(backup.path.name + ".part")
    partial.unlink(missing_ok=True)
    busy_s = profile.targets.database.connect_timeout
    try:
        with (
            db.sqlite_file(profile.database_path(), readonly=True, busy_s=busy_s) as source,
            db.sqlite_file(partial, readonly=False, busy_s=busy_s) as copy,
        ):
            source.execute("BEGIN")  # one snapshot for the whole copy: no restarts
            total = source.execute("PRAGMA page_count").fetchone()[0]
            with tqdm(total=total, unit="page", desc="backup", mininterval=0.5) as progress:
                source.backup(
                    copy,
                    pages=PAGES_PER_STEP,
                    progress=lambda _status, remaining, pages: progress.update(
                        pages - remaining - progress.n
                    ),
                )
            source.execute("COMMIT")
    except sqlite3.Error as exc:
        partial.unlink(missing_ok=True)
        raise BackupError(f"backup of {profile.database_path()} failed: {exc}") from None
    manifest = describe(partial, settings.key_tables)
    if manifest["integrity"] != "ok":
        partial.unlink(missing_ok=True)
        raise BackupError(f"the backup copy failed integrity_check: {manifest['integrity']}")
    manifest.update(taken_at=now.isoformat(), sha256=sha256(partial), bytes=partial.stat().st_size)
    backup.manifest_path.write_text(json.dumps(manifest, indent=2))
    os.replace(partial, backup.path)
    return backup


def verify(backup: Backup) -> dict[str, object]:
    """The backup's manifest, after checking the file still has the checksum it was taken with."""
    manifest = json.loads(backup.manifest_path.read_text())
    if sha256(backup.path) != manifest["sha256"]:
        raise BackupError(f"{backup.path.name} no longer matches its manifest's SHA-256")
    return manifest


class SwapUnverified(BackupError, ChangedThenFailed):
    """The rollback swapped the files but the result does not match the backup."""


def _refuse_if_open(profile: Profile) -> None:
    """Refuse while any process has the database open (it would go on using the replaced
    file) or while some processes' open files cannot be seen at all."""
    holders = scan(profile)
    name = profile.database_path().name
    if not holders.empty:
        raise BackupError(
            f"refusing to replace {name} while {len(holders)} process(es) have it open "
            f"({describe_holders(holders)}; pids {', '.join(map(str, holders['pid']))}): "
            "they would go on using the old file"
        )
    if holders.attrs["unseen"]:
        raise BackupError(
            f"refusing to replace {name}: the open files of {holders.attrs['unseen']} "
            "process(es) cannot be read, so one of them may have it open (run as root)"
        )


def _signature(live: Path) -> tuple[tuple[str, int, int, int], ...]:
    """Inode, size and modification time of the database and its companions: if any
    changes while the current file is being kept, something wrote to it meanwhile."""
    return tuple(
        (path.name, status.st_ino, status.st_size, status.st_mtime_ns)
        for path in database_files(live)
        if (status := _stat(path)) is not None
    )


def _stat(path: Path) -> os.stat_result | None:
    try:
        return path.stat()
    except FileNotFoundError:
        return None


def keep_current(profile: Profile, now: datetime) -> Path:
    """Copy the live database and its journal/WAL, byte for byte, into the backup folder
    (as private as the process makes new files: not with the live file's mode)."""
    kept = profile.backup_dir() / f"{profile.name}-{now.strftime(STAMP)}.before-rollback"
    kept.mkdir(parents=True)
    for path in database_files(profile.database_path()):
        if path.exists():
            shutil.copyfile(path, kept / path.name)
    return kept


def _stage(backup: Backup, live: Path) -> Path:
    """The backup copied beside the live file (same filesystem, so the swap is a rename),
    synced, with the live file's owner and mode: the pipeline's user (or group) must still
    write it, and it is no wider than the file it replaces."""
    staged = live.with_name(f".{live.name}.rollback")
    shutil.copyfile(backup.path, staged)
    current = live.stat()
    os.chown(staged, current.st_uid, current.st_gid)
    os.chmod(staged, current.st_mode & 0o7777)
    with staged.open("rb+") as stream:
        os.fsync(stream.fileno())
    return staged


def rollback(profile: Profile, backup: Backup, now: datetime) -> dict[str, object]:
    """Replace the live database with `backup`: verify it, keep the current file, swap by
    rename, and check the result against the manifest. Returns what was done."""
    manifest = verify(backup)
    live = profile.database_path()
    _refuse_if_open(profile)
    before = _signature(live)
    kept = keep_current(profile, now)
    staged = _stage(backup, live)
    try:
        _refuse_if_open(profile)
        if _signature(live) != before:
            raise BackupError(f"{live.name} changed while it was being kept: something writes it")
    except BackupError:
        shutil.rmtree(kept)  # a copy taken while something wrote is no before-image
        staged.unlink()
        raise
    # a journal or WAL left beside the new file would be replayed into it
    for companion in database_files(live)[1:]:
        companion.unlink(missing_ok=True)
    os.replace(staged, live)
    restored = describe(live, list(manifest["tables"]))
    if restored["integrity"] != "ok" or restored["tables"] != manifest["tables"]:
        raise SwapUnverified(
            f"{live.name} was replaced by {backup.path.name} but does not match its manifest "
            f"({restored}); the previous file is kept in {kept}"
        )
    return {"restored": backup.path.name, "kept_previous": str(kept), "tables": restored["tables"]}
