"""Database upkeep as planned actions: VACUUM ANALYZE named PostgreSQL tables; ANALYZE,
REINDEX and VACUUM of a SQLite file."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from typing import ClassVar

import humanfriendly
import sqlalchemy as sa

from opslib.actions import Applied, Plan
from opslib.probes import ProbeError, db
from opslib.probes.sqlite import storage
from opslib.probes.sqlite_locks import database_files
from opslib.probes.stages import running_stages
from opslib.profiles import Profile

DEAD_ROWS_SQL = (
    "SELECT coalesce(sum(n_dead_tup), 0) FROM pg_stat_user_tables WHERE relname = ANY(:tables)"
)


@dataclass
class VacuumAnalyze:
    """Reclaim dead rows and refresh planner statistics. Reads keep working while it runs;
    it takes no lock that blocks the pipeline's inserts and updates."""

    profile: Profile
    needs: ClassVar[str] = "postgres"
    tables: tuple[str, ...] = ()
    name: str = "vacuum_analyze"

    def targets(self) -> tuple[str, ...]:
        """The tables named, else the queue table and the costs table."""
        if self.tables:
            return self.tables
        named = [
            self.profile.queue.table if self.profile.queue else None,
            self.profile.costs.table if self.profile.costs else None,
        ]
        return tuple(table for table in named if table)

    def plan(self) -> Plan:
        if not self.targets():
            return Plan(self.name, self.profile.name, "no PostgreSQL table to vacuum", ())
        return Plan(
            action=self.name,
            target=self.profile.database_display(),
            summary=f"VACUUM ANALYZE {', '.join(self.targets())}",
            changes=tuple({"table": table} for table in self.targets()),
        )

    def apply(self, plan: Plan) -> Applied:
        tables = [change["table"] for change in plan.changes]
        engine = db.engine(self.profile, readonly=False).execution_options(
            isolation_level="AUTOCOMMIT"
        )
        with engine.connect() as connection:
            quote = connection.dialect.identifier_preparer.quote
            before = connection.execute(sa.text(DEAD_ROWS_SQL), {"tables": tables}).scalar_one()
            for table in tables:  # VACUUM cannot run inside a transaction block
                connection.exec_driver_sql(f"VACUUM (ANALYZE) {quote(table)}")
            after = connection.execute(sa.text(DEAD_ROWS_SQL), {"tables": tables}).scalar_one()
        return Applied(len(tables), int(before), int(after), list(plan.changes), [], None)


@dataclass
class SqliteMaintenance:
    """ANALYZE always (fresh statistics for the query planner); REINDEX and VACUUM only when
    asked: VACUUM rewrites the whole file, needs free disk about its size and waits for
    every reader to let go, so it belongs in a quiet window."""

    profile: Profile
    needs: ClassVar[str] = "sqlite"
    reindex: bool = False
    vacuum: bool = False
    name: str = "sqlite_maintenance"

    def statements(self) -> list[str]:
        """In the order they run: fresh statistics first, the rewrite last."""
        return ["ANALYZE"] + ["REINDEX"] * self.reindex + ["VACUUM"] * self.vacuum

    def _refuse_vacuum(self) -> None:
        """VACUUM writes a new copy of the file and holds the write lock throughout."""
        running = running_stages(self.profile)
        if running:
            raise ProbeError(f"refusing to plan VACUUM while {', '.join(running)} runs")
        live = self.profile.database_path()
        size = sum(path.stat().st_size for path in database_files(live) if path.exists())
        free = shutil.disk_usage(live.parent).free
        if free < 2 * size:
            raise ProbeError(
                f"refusing to plan VACUUM: it needs about {humanfriendly.format_size(2 * size)} "
                f"free beside {live.name}, and {humanfriendly.format_size(free)} is"
            )

    def plan(self) -> Plan:
        if self.vacuum:
            self._refuse_vacuum()
        before = storage(self.profile)
        return Plan(
            action=self.name,
            target=str(self.profile.database_path()),
            summary=f"run {', '.join(self.statements())} ({before.summary})",
            changes=tuple({"statement": statement} for statement in self.statements()),
        )

    def apply(self, plan: Plan) -> Applied:
        if {"statement": "VACUUM"} in plan.changes:
            self._refuse_vacuum()  # a stage may have started since the plan was shown
        before = storage(self.profile).value
        with db.sqlite_file(
            self.profile.database_path(),
            readonly=False,
            busy_s=self.profile.targets.database.connect_timeout,
        ) as connection:
            for change in plan.changes:
                connection.execute(change["statement"])
        after = storage(self.profile).value
        return Applied(
            len(plan.changes), round(before, 2), round(after, 2), list(plan.changes), [], None
        )
