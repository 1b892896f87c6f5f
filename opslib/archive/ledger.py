"""The ledger: runs, check results and audits, queried without re-reading notebooks.

It is SQLAlchemy, a SQLite file beside the reports by default and any URL via
OPSLIB_LEDGER_URL (PostgreSQL for a shared archive). Every write is one transaction, so
a run killed half-way leaves either its whole row set or nothing. The tables are in
`archive.tables`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from opslib import paths
from opslib.archive.tables import audit, check_results, metadata, runs
from opslib.checks import CheckResult


def ledger_url() -> str:
    return (
        os.environ.get("OPSLIB_LEDGER_URL") or f"sqlite:///{paths.reports_dir() / 'ledger.sqlite'}"
    )


def ledger_exists() -> bool:
    """False for a SQLite ledger not created yet, so reading history creates nothing."""
    url = ledger_url()
    return not url.startswith("sqlite:///") or Path(url.removeprefix("sqlite:///")).exists()


@dataclass
class RunRecord:
    run_id: str
    runbook: str
    profile: str
    started_at: datetime
    duration_s: float
    status: str
    exit_code: int
    summary: str
    notebook_path: str | None
    html_path: str | None
    git_sha: str | None
    os_user: str
    run_by: str
    host: str
    parameters: dict[str, Any]


class Ledger:
    """History queries without re-reading notebooks; created on first use."""

    def __init__(self, url: str | None = None, *, timeout_s: float = 30.0) -> None:
        """`timeout_s` bounds each wait for another process's write (and, for a server,
        the connection): a run passes what is left of its own budget."""
        self.url = url or ledger_url()
        if self.url.startswith("sqlite:///"):
            Path(self.url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        self.engine = sa.create_engine(
            self.url, poolclass=NullPool, connect_args=_connect_args(self.url, timeout_s)
        )
        self._create_tables()

    def _create_tables(self) -> None:
        """Create missing tables and indexes (an index added later reaches an existing
        ledger too); two runs creating a new ledger at once both succeed."""
        for attempt in range(3):
            try:
                metadata.create_all(self.engine, checkfirst=True)
                for table in metadata.sorted_tables:
                    for index in table.indexes:
                        index.create(self.engine, checkfirst=True)
                return
            except sa.exc.DBAPIError as exc:
                # another process created it between the check and the create (PostgreSQL
                # says so as a unique violation on its catalogue)
                raced = "already exists" in str(exc) or "pg_class_relname" in str(exc)
                if not raced or attempt == 2:
                    raise

    def record_run(self, run: RunRecord, results: list[CheckResult]) -> None:
        row = {
            **run.__dict__,
            "parameters": json.dumps(run.parameters, sort_keys=True, default=str),
        }
        with self.engine.begin() as connection:
            connection.execute(runs.insert().values(**row))
            if results:
                connection.execute(
                    check_results.insert(),
                    [
                        {
                            "run_id": run.run_id,
                            "name": r.name,
                            "status": r.status.name,
                            "value": r.value,
                            "unit": r.unit,
                            "summary": r.summary,
                        }
                        for r in results
                    ],
                )

    def open_audit(self, entry: dict[str, Any]) -> int:
        """Record a change about to be applied (outcome `applying`), before it starts:
        a change whose process dies half-way still leaves its trace."""
        row = {**entry, "outcome": "applying", "changes": "[]"}
        with self.engine.begin() as connection:
            return connection.execute(audit.insert().values(**row)).inserted_primary_key[0]

    def close_audit(self, audit_id: int, outcome: str, **facts: Any) -> None:
        """Complete an audit record: `applied` with what changed, or `failed` with why."""
        for key in ("changes", "backup"):
            if key in facts:
                facts[key] = json.dumps(facts[key], default=str)
        with self.engine.begin() as connection:
            connection.execute(
                audit.update().where(audit.c.id == audit_id).values(outcome=outcome, **facts)
            )

    def applied_changes(
        self, action: str, profile: str
    ) -> list[tuple[datetime, list[dict[str, Any]]]]:
        """(when, what changed) of each applied `action` on `profile`, newest first."""
        query = (
            sa.select(audit.c.at, audit.c.changes)
            .where(
                audit.c.action == action, audit.c.profile == profile, audit.c.outcome == "applied"
            )
            .order_by(audit.c.id.desc())
        )
        with self.engine.connect() as connection:
            return [(row.at, json.loads(row.changes)) for row in connection.execute(query)]

    def value_before(
        self, profile: str, check: str, before: datetime
    ) -> tuple[datetime, float] | None:
        """(when, value) of the newest recorded result named `check` for `profile` from a
        run started at or before `before`: what a growth figure is measured against."""
        query = (
            sa.select(runs.c.started_at, check_results.c.value)
            .join(check_results, check_results.c.run_id == runs.c.run_id)
            .where(
                runs.c.profile == profile,
                check_results.c.name == check,
                check_results.c.value.is_not(None),
                runs.c.started_at <= before,
            )
            .order_by(runs.c.started_at.desc())
            .limit(1)
        )
        with self.engine.connect() as connection:
            row = connection.execute(query).first()
        return None if row is None else (row.started_at, row.value)

    def history(
        self,
        runbook: str | None = None,
        profile: str | None = None,
        limit: int = 20,
        *,
        status: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[dict]:
        """Runs newest first, filtered by runbook, profile, status and start time."""
        query = sa.select(runs).order_by(runs.c.started_at.desc()).limit(limit)
        for column, value in ((runs.c.runbook, runbook), (runs.c.profile, profile),
                              (runs.c.status, status)):  # fmt: skip
            if value:
                query = query.where(column == value)
        if since is not None:
            query = query.where(runs.c.started_at >= since)
        if until is not None:
            query = query.where(runs.c.started_at < until)
        with self.engine.connect() as connection:
            return [dict(row) for row in connection.execute(query).mappings()]

    def run(self, run_id: str) -> tuple[dict, list[dict]]:
        """One run (by its id or a unique prefix of it) and its check results in order;
        LookupError says why none or several match."""
        with self.engine.connect() as connection:
            found = (
                connection.execute(
                    sa.select(runs)
                    .where(runs.c.run_id.startswith(run_id, autoescape=True))
                    .limit(2)
                )
                .mappings()
                .all()
            )
            if len(found) != 1:
                raise LookupError(
                    f"no run {run_id!r} in the ledger"
                    if not found
                    else f"run id {run_id!r} is ambiguous: give more characters"
                )
            results = connection.execute(
                sa.select(check_results)
                .where(check_results.c.run_id == found[0]["run_id"])
                .order_by(check_results.c.id)
            ).mappings()
            return dict(found[0]), [dict(row) for row in results]

    def newest_per_group(self, per_group: int) -> list[dict]:
        """The newest `per_group` runs of every runbook × profile, newest first within each
        group (one window query, whatever the ledger's size)."""
        rank = sa.func.row_number().over(
            partition_by=(runs.c.runbook, runs.c.profile), order_by=runs.c.started_at.desc()
        )
        ranked = sa.select(
            runs.c.run_id, runs.c.runbook, runs.c.profile, runs.c.started_at, runs.c.status,
            runs.c.summary, runs.c.html_path, rank.label("rank"),
        ).subquery()  # fmt: skip
        query = (
            sa.select(ranked)
            .where(ranked.c.rank <= per_group)
            .order_by(ranked.c.runbook, ranked.c.profile, ranked.c.rank)
        )
        with self.engine.connect() as connection:
            return [dict(row) for row in connection.execute(query).mappings()]

    def status_since(self, runbook: str, profile: str, status: str) -> datetime | None:
        """When the current streak of `status` began: the first run after the last run
        with another status (the first run ever, if there is none)."""
        group = (runs.c.runbook == runbook, runs.c.profile == profile)
        with self.engine.connect() as connection:
            changed = connection.execute(
                sa.select(sa.func.max(runs.c.started_at)).where(*group, runs.c.status != status)
            ).scalar()
            after = (runs.c.started_at > changed,) if changed is not None else ()
            return connection.execute(
                sa.select(sa.func.min(runs.c.started_at)).where(*group, *after)
            ).scalar()

    def values(self, run_ids: list[str]) -> list[dict]:
        """The numeric check results of these runs: what the trend lines are drawn from."""
        if not run_ids:
            return []
        query = sa.select(
            check_results.c.run_id, check_results.c.name, check_results.c.status,
            check_results.c.value, check_results.c.unit,
        ).where(check_results.c.run_id.in_(run_ids), check_results.c.value.is_not(None))  # fmt: skip
        with self.engine.connect() as connection:
            return [dict(row) for row in connection.execute(query).mappings()]

    def latest(self) -> list[dict]:
        """The newest run of every runbook × profile."""
        newest = (
            sa.select(
                runs.c.runbook, runs.c.profile, sa.func.max(runs.c.started_at).label("started_at")
            )
            .group_by(runs.c.runbook, runs.c.profile)
            .subquery()
        )
        query = (
            sa.select(runs)
            .join(
                newest,
                sa.and_(
                    runs.c.runbook == newest.c.runbook,
                    runs.c.profile == newest.c.profile,
                    runs.c.started_at == newest.c.started_at,
                ),
            )
            .order_by(runs.c.runbook, runs.c.profile)
        )
        with self.engine.connect() as connection:
            return [dict(row) for row in connection.execute(query).mappings()]


def _connect_args(url: str, timeout_s: float) -> dict[str, Any]:
    """Concurrent runs wait for each other's short ledger transactions instead of failing,
    but no longer than `timeout_s` per statement (libpq counts the connection's wait in
    whole seconds, at least 2)."""
    if url.startswith("sqlite"):
        return {"timeout": timeout_s}
    waits_ms = max(1, int(timeout_s * 1000))
    return {
        "connect_timeout": max(2, int(timeout_s)),
        # a lock on the ledger's tables or a stalled server is waited out no longer
        "options": f"-c statement_timeout={waits_ms} -c lock_timeout={waits_ms}",
    }
