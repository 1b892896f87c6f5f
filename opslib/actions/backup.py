"""Backups and restores as planned, audited actions.

PostgreSQL restores into a new database and leaves the switch to a person; SQLite rolls
the live file back to a verified copy, as the spots manual does with `cp`, but keeping
the current file and refusing while anything has it open.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import ClassVar

from sqlalchemy.engine import make_url

from opslib.actions import Applied, Plan, pg_dump, sqlite_copy
from opslib.clock import utc_now
from opslib.errors import BackupError
from opslib.probes import backups
from opslib.profiles import Profile


@dataclass
class TakeBackup:
    """Dump (PostgreSQL) or copy (SQLite) the database with its manifest, then prune what
    the retention classes drop."""

    profile: Profile
    needs: ClassVar[str] = "backups"
    name: str = "take_backup"

    def _prunable(self) -> list[str]:
        return backups.prunable(self.profile, backups.existing(self.profile))

    @property
    def _sqlite(self) -> bool:
        return self.profile.provides("sqlite")

    @property
    def _kind(self) -> str:
        return "copy" if self._sqlite else "dump"

    def plan(self) -> Plan:
        prune = self._prunable()
        folder = self.profile.backup_dir()
        return Plan(
            action=self.name,
            target=str(folder),
            summary=f"{self._kind} {self.profile.database_display()} into {folder} and prune "
            f"{len(prune)} old backup(s)",
            changes=(
                {"create": f"{self.profile.name} {self._kind} with manifest"},
                {"prune": prune},
            ),
        )

    def apply(self, plan: Plan) -> Applied:
        before = len(backups.existing(self.profile))
        started = time.monotonic()
        take = sqlite_copy.take if self._sqlite else pg_dump.take
        backup = take(self.profile, utc_now())
        planned_prune = set(plan.changes[1]["prune"])
        pruned = prune(self.profile, lambda: backups.existing(self.profile), planned_prune)
        return Applied(
            changed=1 + len(pruned),
            before_count=before,
            after_count=len(backups.existing(self.profile)),
            changes=[
                {"created": backup.path.name, "seconds": round(time.monotonic() - started, 2)},
                {"pruned": pruned},
            ],
            skipped=sorted(planned_prune - set(pruned)),
            backup=None,
        )


def prune(
    profile: Profile, found: Callable[[], list[backups.Backup]], planned: Iterable[str]
) -> list[str]:
    """Remove the planned backups (of the kind `found` lists) that the retention classes
    still drop now that the new backup is written, each with its manifest or checksum;
    returns their names. One retention for database dumps and Redis snapshots alike."""
    wanted = set(planned)
    now_prunable = set(backups.prunable(profile, found()))
    pruned = []
    for old in found():
        if old.path.name in wanted and old.path.name in now_prunable:
            old.path.unlink()
            old.sidecar.unlink(missing_ok=True)
            pruned.append(old.path.name)
    return pruned


@dataclass
class RestoreVerified:
    """Restore a backup (the newest, or the named file) into a new database and verify it
    against the backup's manifest. Nothing is swapped: pointing the pipeline at the
    restored database stays a human decision, made after reading this report."""

    profile: Profile
    needs: ClassVar[str] = "postgres_backups"
    backup_name: str = ""
    name: str = "restore_verified"

    def plan(self) -> Plan:
        chosen = backups.chosen(backups.existing(self.profile), self.backup_name)
        if chosen is None:
            return Plan(
                self.name,
                self.profile.name,
                f"no backup {self.backup_name or 'at all'} in {self.profile.backup_dir()}",
                (),
            )
        source = make_url(self.profile.database_url()).database
        target = f"{source}_restore_{chosen.taken_at:%Y%m%d%H%M%S}"
        return Plan(
            action=self.name,
            target=target,
            summary=f"restore {chosen.path.name} into new database {target} and verify "
            f"{', '.join(self.profile.backups.key_tables) or 'no key tables'}",
            changes=({"restore": chosen.path.name, "into": target},),
        )

    def apply(self, plan: Plan) -> Applied:
        (change,) = plan.changes
        chosen = backups.Backup(self.profile.backup_dir() / change["restore"], utc_now())
        started = time.monotonic()
        try:
            verified = pg_dump.restore_verified(self.profile, chosen, change["into"])
        except BackupError:
            pg_dump.drop_database(self.profile, change["into"])
            raise
        seconds = round(time.monotonic() - started, 2)
        return Applied(
            changed=1,
            before_count=0,
            after_count=1,
            changes=[{**change, "verified": verified, "restore_seconds": seconds}],
            skipped=[],
            backup=None,
        )


@dataclass
class RollbackDatabase:
    """Put a verified backup (the newest, or the named file) in place of the live SQLite
    database, keeping the current file and its journal/WAL beside the backups."""

    profile: Profile
    needs: ClassVar[str] = "sqlite_backups"
    backup_name: str = ""
    name: str = "rollback_database"

    def plan(self) -> Plan:
        chosen = backups.chosen(backups.existing(self.profile), self.backup_name)
        live = self.profile.database_path()
        if chosen is None:
            summary = f"no backup {self.backup_name or 'at all'} in {self.profile.backup_dir()}"
            return Plan(self.name, str(live), summary, ())
        return Plan(
            action=self.name,
            target=str(live),
            summary=f"replace {live.name} with {chosen.path.name} (taken {chosen.taken_at:%Y-%m-%d %H:%M} "
            f"UTC), keeping the current file; refused while any process has it open",
            changes=({"restore": chosen.path.name, "into": str(live)},),
        )

    def apply(self, plan: Plan) -> Applied:
        (change,) = plan.changes
        chosen = backups.Backup(self.profile.backup_dir() / change["restore"], utc_now())
        started = time.monotonic()
        done = sqlite_copy.rollback(self.profile, chosen, utc_now())
        return Applied(
            changed=1,
            before_count=0,
            after_count=1,
            changes=[{**change, **done, "restore_seconds": round(time.monotonic() - started, 2)}],
            skipped=[],
            backup={"kept_previous": done["kept_previous"]},
        )
