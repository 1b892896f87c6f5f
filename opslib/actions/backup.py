"""Backups and restores as planned, audited actions.

PostgreSQL restores into a new database and leaves the switch to a person; SQLite rolls
the live file back to a verified copy, as the spots manual does with `cp`, but keeping
the current file and refusing while anything has it open.
"""

from __future__ import annotations

import time
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
        settings = self.profile.backups
        found = backups.existing(self.profile)
        keep = backups.to_keep(found, utc_now(), settings.hourly, settings.daily, settings.weekly)
        # the backup about to be taken is the newest of its hour: the oldest kept one goes
        return sorted(b.path.name for b in found if b.path not in keep)

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
        pruned = []
        for old in backups.existing(self.profile):
            if old.path.name in planned_prune and old.path.name in self._prunable():
                old.path.unlink()
                old.manifest_path.unlink(missing_ok=True)
                pruned.append(old.path.name)
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


@dataclass
class RestoreVerified:
    """Restore a backup (the newest, or the named file) into a new database and verify it
    against the backup's manifest. Nothing is swapped: pointing the pipeline at the
    restored database stays a human decision, made after reading this report."""

    profile: Profile
    needs: ClassVar[str] = "postgres_backups"
    backup_name: str = ""
    name: str = "restore_verified"

    def _chosen(self) -> backups.Backup | None:
        found = backups.existing(self.profile)
        if self.backup_name:
            found = [b for b in found if b.path.name == self.backup_name]
        return found[0] if found else None

    def plan(self) -> Plan:
        chosen = self._chosen()
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
        found = backups.existing(self.profile)
        if self.backup_name:
            found = [b for b in found if b.path.name == self.backup_name]
        live = self.profile.database_path()
        if not found:
            summary = f"no backup {self.backup_name or 'at all'} in {self.profile.backup_dir()}"
            return Plan(self.name, str(live), summary, ())
        chosen = found[0]
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
