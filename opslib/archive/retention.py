"""Retention of the archive: what `opslib archive prune` keeps, as a plan first.

The policy (`parameters/retention.yaml`) keeps every run for `keep_all`, then one run a
day per runbook × profile until `keep_daily` (the worst of that day, the latest of equals:
a reviewer looking back wants the day's problem, not its quiet hours), then nothing; and
gzips the executed notebooks of older kept runs. The ledger rows go first, in one
transaction, then the files: a crash in between leaves files nobody points at, never a
ledger pointing at nothing. Every prune that applies is audited in the ledger.
"""

from __future__ import annotations

import gzip
import os
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import ClassVar

import pandas as pd
import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, ValidationError

from opslib import paths
from opslib.actions import Applied, Plan
from opslib.archive.ledger import Ledger
from opslib.archive.tables import check_results, runs
from opslib.clock import utc_now
from opslib.errors import OpslibError
from opslib.profiles.fields import Days
from opslib.profiles.yaml_files import describe_validation, read_yaml
from opslib.status import Status

COMPRESSED = ".gz"


class Policy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    keep_all: Days = 30.0
    keep_daily: Days = 365.0
    compress_notebooks_after: Days = 7.0


def load_policy(path: Path | None = None) -> Policy:
    """The policy file (default `parameters/retention.yaml`); a problem is one line."""
    path = path or paths.project_root() / "parameters" / "retention.yaml"
    data = read_yaml(path, str(path), OpslibError) or {}
    try:
        policy = Policy.model_validate(data)
    except ValidationError as exc:
        raise OpslibError(f"{path}: {describe_validation(exc)}") from None
    if policy.keep_daily < policy.keep_all:
        raise OpslibError(f"{path}: keep_daily must be at least keep_all")
    return policy


@dataclass
class Pruning:
    """What a policy removes and compresses now."""

    delete: pd.DataFrame  # runs: run_id, runbook, profile, started_at, status, paths
    compress: pd.DataFrame  # kept runs whose notebook is due for gzip


def _all_runs(ledger: Ledger) -> pd.DataFrame:
    query = sa.select(
        runs.c.run_id, runs.c.runbook, runs.c.profile, runs.c.started_at, runs.c.status,
        runs.c.html_path, runs.c.notebook_path,
    )  # fmt: skip
    with ledger.engine.connect() as connection:
        return pd.DataFrame(
            connection.execute(query).mappings().all(), columns=list(query.selected_columns.keys())
        )


def select(policy: Policy, table: pd.DataFrame, now: datetime) -> Pruning:
    """Split the ledger's runs into kept, deleted and to-be-compressed by `policy`."""
    if table.empty:
        return Pruning(table, table)
    table = table.copy()
    table["started_at"] = pd.to_datetime(table["started_at"])
    age = now - table["started_at"]
    recent = age <= timedelta(days=policy.keep_all)
    daily = ~recent & (age <= timedelta(days=policy.keep_daily))
    table["rank"] = table["status"].map(lambda name: Status[name].severity)
    table["has_report"] = table["html_path"].notna()
    table["day"] = table["started_at"].dt.date
    # the day's worst run that left a report (a run that never produced one shows nothing)
    best = (
        table[daily]
        .sort_values(["has_report", "rank", "started_at"], ascending=[False, False, False])
        .drop_duplicates(["runbook", "profile", "day"])
        .index
    )
    keep = recent | table.index.isin(best)
    kept = table[keep]
    due = kept[
        (now - kept["started_at"] > timedelta(days=policy.compress_notebooks_after))
        & kept["notebook_path"].notna()
        & ~kept["notebook_path"].fillna("").str.endswith(COMPRESSED)
    ]
    columns = ["run_id", "runbook", "profile", "started_at", "status", "html_path", "notebook_path"]
    return Pruning(table.loc[~keep, columns], due[columns])


def _today() -> datetime:
    """Ages are counted from the start of the UTC day: a plan, and its hash, hold all day
    instead of changing each time a five-minute run crosses a boundary."""
    return utc_now().replace(hour=0, minute=0, second=0, microsecond=0)


@dataclass
class PruneArchive:
    """The prune as an action through the one plan gate: the runs to delete and the
    notebooks to gzip, hashed, applied where the plan still holds, audited like every fix.
    Ages are counted from the start of the UTC day, so the plan (and its hash) holds all
    day instead of changing each time a five-minute run crosses a boundary."""

    policy: Policy
    ledger: Ledger
    needs: ClassVar[str] = ""  # the archive, not a profile's pipeline
    profile: ClassVar[None] = None
    name: str = "archive_prune"

    def plan(self) -> Plan:
        pruning = select(self.policy, _all_runs(self.ledger), _today())
        changes = tuple(
            [{"delete_run": run_id} for run_id in sorted(pruning.delete["run_id"])]
            + [{"compress": path} for path in sorted(pruning.compress["notebook_path"])]
        )
        counts = Counter(zip(pruning.delete["runbook"], pruning.delete["profile"], strict=True))
        squeezed = Counter(
            zip(pruning.compress["runbook"], pruning.compress["profile"], strict=True)
        )
        context = pd.DataFrame(
            [{"runbook": runbook, "profile": profile, "runs_deleted": counts[(runbook, profile)],
              "notebooks_gzipped": squeezed[(runbook, profile)]}
             for runbook, profile in sorted(set(counts) | set(squeezed))]
        )  # fmt: skip
        policy = self.policy
        return Plan(
            action=self.name,
            target=str(paths.reports_dir()),
            summary=f"delete {len(pruning.delete)} run(s) (ledger rows, then report files) and "
            f"gzip {len(pruning.compress)} notebook(s) under the policy: everything for "
            f"{policy.keep_all:g} days, one run a day until {policy.keep_daily:g} days",
            changes=changes,
            context=context if len(context) else None,
        )

    def apply(self, plan: Plan) -> Applied:
        """Carry out `plan` where it still holds: a run the plan named and the policy
        still drops, a notebook the plan named and the policy still compresses."""
        fresh = select(self.policy, _all_runs(self.ledger), _today())
        planned = {change["delete_run"] for change in plan.changes if "delete_run" in change}
        doomed = fresh.delete[fresh.delete["run_id"].isin(planned)]
        done = {"runs": 0, "files": 0, "notebooks": 0}
        try:
            _delete_runs(self.ledger, doomed, done)
            planned_notebooks = {c["compress"] for c in plan.changes if "compress" in c}
            for row in fresh.compress.itertuples():
                if row.notebook_path in planned_notebooks:
                    done["notebooks"] += _compress(self.ledger, row.run_id, row.notebook_path)
        except Exception as exc:  # noqa: BLE001 - say what was done before it failed
            raise OpslibError(f"prune stopped after {done}: {type(exc).__name__}: {exc}") from None
        return Applied(
            changed=done["runs"] + done["notebooks"],
            before_count=len(planned),
            after_count=done["runs"],
            changes=[done],
            skipped=sorted(planned - set(doomed["run_id"])),
            backup=None,
        )


def _gzip(path: Path) -> Path:
    """`path` gzipped beside it (temp name, checked, renamed); the original stays."""
    target = path.with_name(path.name + COMPRESSED)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.part")
    data = path.read_bytes()
    with gzip.open(temporary, "wb") as stream:
        stream.write(data)
    if gzip.decompress(temporary.read_bytes()) != data:
        temporary.unlink()
        raise OSError(f"{path}: the compressed copy does not read back the same")
    os.replace(temporary, target)
    return target


def _delete_runs(ledger: Ledger, doomed: pd.DataFrame, done: dict[str, int]) -> None:
    """Ledger rows first, in one transaction; then the files, then their emptied folders."""
    ids = list(doomed["run_id"])
    with ledger.engine.begin() as connection:
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            connection.execute(check_results.delete().where(check_results.c.run_id.in_(chunk)))
            connection.execute(runs.delete().where(runs.c.run_id.in_(chunk)))
    done["runs"] = len(ids)
    reports = paths.reports_dir()
    folders = set()
    for row in doomed.itertuples():
        for relative in (row.html_path, row.notebook_path):
            if isinstance(relative, str) and relative:  # a run that died left none (NaN)
                path = reports / relative
                done["files"] += path.exists()
                path.unlink(missing_ok=True)
                folders.add(path.parent)
    for folder in sorted(folders, key=lambda p: -len(p.parts)):
        _remove_if_empty(folder, reports)


def _compress(ledger: Ledger, run_id: str, relative: str) -> int:
    """gzip one kept run's notebook and point the ledger at it; 0 if it is gone."""
    reports = paths.reports_dir()
    source = reports / relative
    if not source.exists():
        return 0
    target = _gzip(source)
    with ledger.engine.begin() as connection:
        connection.execute(
            runs.update()
            .where(runs.c.run_id == run_id)
            .values(notebook_path=str(target.relative_to(reports)))
        )
    source.unlink(missing_ok=True)
    return 1


def _remove_if_empty(folder: Path, reports: Path) -> None:
    """A day, month or year folder the prune emptied (never the archive itself)."""
    while folder != reports and reports in folder.parents:
        try:
            folder.rmdir()  # only succeeds when empty
        except OSError:
            return
        folder = folder.parent
