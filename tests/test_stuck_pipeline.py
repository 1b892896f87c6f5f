"""Remediation: a reset changes nothing unless asked, exactly the planned rows when
asked, nothing on a stale approval, and leaves a job alone that finished meanwhile."""

from __future__ import annotations

import re
import sqlite3

import pytest
from support import Workspace

from opslib.actions import execute
from opslib.actions.queue import ResetStuckJobs
from opslib.archive.ledger import Ledger
from opslib.context import RunContext
from opslib.profiles import load_profile


def job_rows(workspace: Workspace) -> dict[int, tuple]:
    with sqlite3.connect(workspace.data / "demo" / "pipeline.db") as db:
        return {
            row[0]: row[1:]
            for row in db.execute("SELECT id, status, started_at, finished_at FROM jobs")
        }


def stuck_ids(workspace: Workspace) -> set[int]:
    with sqlite3.connect(workspace.data / "demo" / "pipeline.db") as db:
        return {
            row[0]
            for row in db.execute(
                "SELECT id FROM jobs WHERE status = 'processing' AND started_at < strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-30 minutes')"
            )
        }


def audit_rows(workspace: Workspace) -> list[tuple]:
    ledger = workspace.reports / "ledger.sqlite"
    if not ledger.exists():
        return []
    with sqlite3.connect(ledger) as db:
        return db.execute(
            "SELECT action, plan_hash, before_count, after_count, changes, backup FROM audit"
            " WHERE outcome = 'applied'"
        ).fetchall()


def plan_hash(stdout_html: str) -> str:
    return re.search(r"plan hash <code>([0-9a-f]{12})</code>", stdout_html).group(1)


def html_of(workspace: Workspace) -> str:
    (html,) = [p for p in workspace.archive_files() if p.suffix == ".html"]
    return html.read_text()


def test_dry_run_lists_the_stuck_jobs_and_changes_no_row(workspace: Workspace) -> None:
    before = job_rows(workspace)
    result = workspace.opslib("run", "stuck-pipeline")
    assert result.returncode == 1, result.stdout + result.stderr
    assert job_rows(workspace) == before
    page = html_of(workspace)
    assert "dry run: would reset 3 stuck job(s) to queued" in page
    assert plan_hash(page)
    assert audit_rows(workspace) == []


def test_apply_resets_exactly_the_planned_rows_and_audits_them(workspace: Workspace) -> None:
    before = job_rows(workspace)
    stuck = stuck_ids(workspace)
    assert len(stuck) == 3
    result = workspace.opslib("run", "stuck-pipeline", "-p", "apply=true", "--by", "alice")
    after = job_rows(workspace)
    changed = {job_id for job_id in before if before[job_id] != after[job_id]}
    assert changed == stuck
    assert all(after[job_id][0] == "queued" and after[job_id][1] is None for job_id in stuck)
    ((action, _hash, before_count, after_count, changes, backup),) = audit_rows(workspace)
    assert (action, before_count, after_count) == ("reset_stuck_jobs", 3, 0)
    assert sorted(re.findall(r'"id": (\d+)', changes)) == sorted(str(i) for i in stuck)
    assert '"status": "processing"' in backup
    with sqlite3.connect(workspace.reports / "ledger.sqlite") as db:
        assert db.execute("SELECT run_by FROM audit").fetchone() == ("alice",)
    assert "applied plan" in result.stdout + html_of(workspace)


def test_stale_approval_changes_nothing_and_shows_the_new_plan(workspace: Workspace) -> None:
    before = job_rows(workspace)
    result = workspace.opslib("run", "stuck-pipeline", "-p", "approve=0123456789ab")
    assert result.returncode == 1
    assert job_rows(workspace) == before
    page = html_of(workspace)
    current = plan_hash(page)
    assert f"approved plan(s) 0123456789ab do not include this plan, {current}" in page
    assert audit_rows(workspace) == []


def test_matching_approval_applies_the_reviewed_plan(workspace: Workspace) -> None:
    workspace.opslib("run", "stuck-pipeline")
    reviewed = plan_hash(html_of(workspace))
    stuck = stuck_ids(workspace)
    for page in workspace.archive_files():
        page.unlink()
    workspace.opslib("run", "stuck-pipeline", "-p", f"approve={reviewed}")
    assert stuck_ids(workspace) == set()
    assert [row[1] for row in audit_rows(workspace)] == [reviewed]
    assert all(job_rows(workspace)[job_id][0] == "queued" for job_id in stuck)


@pytest.fixture
def demo_profile(workspace: Workspace):  # type: ignore[no-untyped-def]
    return load_profile("demo")


def test_job_that_finished_after_the_plan_is_left_alone(workspace: Workspace, demo_profile) -> None:  # type: ignore[no-untyped-def]
    action = ResetStuckJobs(demo_profile)
    plan = action.plan()
    finished = plan.changes[0]["id"]
    with sqlite3.connect(workspace.data / "demo" / "pipeline.db") as db:
        db.execute(
            "UPDATE jobs SET status = 'completed', finished_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE id = ?",
            (finished,),
        )
    applied = action.apply(plan)
    assert applied.skipped == [finished]
    assert applied.changed == len(plan.changes) - 1
    assert job_rows(workspace)[finished][0] == "completed"


def test_plan_hash_ignores_ages_but_not_the_rows(workspace: Workspace, demo_profile) -> None:  # type: ignore[no-untyped-def]
    first = ResetStuckJobs(demo_profile).plan()
    assert ResetStuckJobs(demo_profile).plan().hash == first.hash
    with sqlite3.connect(workspace.data / "demo" / "pipeline.db") as db:
        db.execute(
            "UPDATE jobs SET started_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-2 hours') WHERE status = 'queued' AND id = (SELECT MIN(id) FROM jobs WHERE status = 'queued')"
        )
        db.execute(
            "UPDATE jobs SET status = 'processing' WHERE started_at IS NOT NULL AND status = 'queued'"
        )
    assert ResetStuckJobs(demo_profile).plan().hash != first.hash


def test_apply_against_a_locked_database_is_unknown_changes_nothing_and_is_audited_failed(
    workspace: Workspace, demo_profile
) -> None:  # type: ignore[no-untyped-def]
    before = job_rows(workspace)
    holder = sqlite3.connect(workspace.data / "demo" / "pipeline.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # readers may read, no one else may write
    try:
        outcome = execute(
            ResetStuckJobs(demo_profile),
            RunContext.current("stuck-pipeline", "demo"),
            Ledger,
            apply=True,
        )
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert outcome.mode == "failed"
    assert outcome.result.status.name == "UNKNOWN"
    assert "locked" in outcome.message
    assert job_rows(workspace) == before
    assert audit_rows(workspace) == []
    with sqlite3.connect(workspace.reports / "ledger.sqlite") as ledger:
        ((outcome_recorded, error),) = ledger.execute("SELECT outcome, error FROM audit").fetchall()
    assert outcome_recorded == "failed" and "locked" in error


def test_a_fix_asks_the_database_afresh_after_a_check_found_it_missing(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unattended run remembers a database that did not answer, so its later checks do
    not wait again; a fix must not inherit that: it is wanted most once the database is
    back."""
    from opslib.runbook import Runbook

    monkeypatch.setenv("OPSLIB_RUN_ID", "unattended")
    database = workspace.data / "demo" / "pipeline.db"
    aside = database.rename(database.with_name("away.db"))
    runbook = Runbook("stuck-pipeline", load_profile("demo"))
    assert runbook.evaluate("stuck_jobs").status.name == "CRITICAL"
    aside.rename(database)
    assert runbook.evaluate("queue_depth").status.name == "CRITICAL"  # remembered
    outcome = runbook.act(ResetStuckJobs(runbook.profile))
    assert outcome.mode == "dry-run" and "would reset 3 stuck job(s)" in outcome.message
