"""Budget recovery on the ideas demo (a real PostgreSQL): closing the circuit breaker,
starting a new budget cycle with the old one archived, and the guard that keeps spending
halted while a budget is spent unless the plan, forced, says so."""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest
from postgres_server import PostgresServer
from support import Workspace, ideas_sql, spend_exactly

from opslib.actions import Action, Outcome, execute
from opslib.actions.budget import NewBudgetCycle, ResetBreaker
from opslib.actions.halt import SetHalt
from opslib.archive.ledger import Ledger
from opslib.clock import utc_now
from opslib.context import RunContext
from opslib.probes.budget import over_budget
from opslib.profiles import Profile, load_profile
from opslib.status import Status

HALTED = "UPDATE pipeline_control SET value = 'on' WHERE key = 'emergency_shutdown'"
# the demo's cycle ends within two days: moved three days back (its spend too), it has ended
ENDED_THREE_DAYS_AGO = (
    "UPDATE budgets SET period_start = period_start - interval '3 days', "
    "period_end = period_end - interval '3 days'; "
    "UPDATE spend SET created_at = created_at - interval '3 days'"
)


def _run(action: Action, **how: object) -> Outcome:
    context = RunContext.current("budget-recovery", "ideas")
    return execute(action, context, Ledger, **how)


def _one(server: PostgresServer, query: str) -> list[tuple]:
    engine = server.engine("ideas")
    with engine.connect() as connection:
        rows = [tuple(row) for row in connection.exec_driver_sql(query)]
    engine.dispose()
    return rows


def _control(server: PostgresServer, key: str) -> str:
    return _one(server, f"SELECT value FROM pipeline_control WHERE key = '{key}'")[0][0]


@pytest.fixture
def profile(ideas: dict) -> Profile:
    return load_profile("ideas")


def test_a_breaker_reset_shows_its_state_and_failures_and_closes_only_when_applied(
    profile: Profile, server: PostgresServer
) -> None:
    stale = ResetBreaker(profile)
    plan = stale.plan()
    # it tripped again after the plan: the same value, a later time
    ideas_sql(server, "UPDATE pipeline_control SET updated_at = updated_at + interval '1 second'"
              " WHERE key = 'circuit_breaker'")  # fmt: skip
    left = stale.apply(plan)
    assert (left.changed, left.skipped) == (0, ["circuit_breaker"])
    assert _control(server, "circuit_breaker") == "half-open"

    dry = _run(ResetBreaker(profile))
    assert dry.mode == "dry-run", dry.message
    assert "close the circuit breaker, half-open since" in dry.plan.summary
    (change,) = dry.plan.changes
    assert change["value"] == ["half-open", "closed"] and change["since"]
    failures = dry.plan.context
    assert list(failures.columns) == ["count", "first_seen", "last_seen", "example"]
    assert 1 <= len(failures) <= 5 and failures["last_seen"].is_monotonic_decreasing
    assert failures["example"].str.contains("ERROR").all()
    assert _control(server, "circuit_breaker") == "half-open"

    applied = _run(ResetBreaker(profile), approve=dry.plan.hash)
    assert applied.mode == "applied", applied.message
    assert applied.applied.remeasured and applied.applied.after_count == 0
    assert applied.applied.backup["previous_value"] == "half-open"
    assert _control(server, "circuit_breaker") == "closed"
    assert _run(ResetBreaker(profile)).mode == "nothing-to-do"


def test_a_resume_works_under_100_percent_and_at_104_7_only_forced_with_the_fact_in_the_plan(
    profile: Profile, server: PostgresServer
) -> None:
    spend_exactly(server, 0.99)
    ideas_sql(server, HALTED)
    assert over_budget(profile) == []
    action = SetHalt(profile, halt=False)
    plan = action.plan()
    assert "over_budget" not in plan.changes[0]
    spend_exactly(server, 1.01)  # spent between plan and apply: not resumed
    assert action.apply(plan).changed == 0
    assert _control(server, "emergency_shutdown") == "on"
    spend_exactly(server, 0.99)
    applied = _run(SetHalt(profile, halt=False), apply=True)
    assert applied.mode == "applied" and applied.applied.after_count == 0
    assert _control(server, "emergency_shutdown") == "off"

    spend_exactly(server, 1.047)
    ideas_sql(server, HALTED)
    assert over_budget(profile)[0] == {"category": "openai", "percent": 104.7}
    refused = _run(SetHalt(profile, halt=False), apply=True)
    assert refused.mode == "refused" and refused.result.status is Status.WARNING
    assert "refused while a budget is at or over 100%" in refused.message
    assert "openai at 104.7%" in refused.message
    assert _run(ResetBreaker(profile), apply=True).mode == "refused"
    assert _control(server, "emergency_shutdown") == "on"
    assert _control(server, "circuit_breaker") == "half-open"

    forced = SetHalt(profile, halt=False, reason="owner approved", force=True)
    plan = forced.plan()
    (change,) = plan.changes
    assert {"category": "openai", "percent": 104.7} in change["over_budget"]
    assert "FORCED although budgets are spent: openai at 104.7%" in plan.summary
    applied = _run(forced, approve=plan.hash)
    assert applied.mode == "applied", applied.message
    assert _control(server, "emergency_shutdown") == "off"


def test_a_new_cycle_waits_for_the_end_then_archives_the_old_one_and_adds_its_rows(
    profile: Profile, server: PostgresServer
) -> None:
    running = _run(NewBudgetCycle(profile), apply=True)
    assert running.mode == "nothing-to-do" and "early=True" in running.message
    ideas_sql(server, ENDED_THREE_DAYS_AGO)
    before = _one(server, "SELECT cycle_id, category, allocated_usd, period_end FROM budgets")
    dry = _run(NewBudgetCycle(profile, allocations={"openai": 40.0}))
    assert dry.mode == "dry-run", dry.message
    assert "into budgets_cycles (created)" in dry.plan.summary
    archived, started = dry.plan.changes
    spent = {row["category"]: row for row in archived["summary"]}
    assert spent["openai"]["spent_usd"] == 28.90 and spent["openai"]["items"] > 200
    assert started["allocations"] == {"openai": 40.0, "google_ads": 25.0, "infrastructure": 7.0}
    assert _one(server, "SELECT to_regclass('budgets_cycles')") == [(None,)]

    applied = _run(NewBudgetCycle(profile, allocations={"openai": 40.0}), approve=dry.plan.hash)
    assert applied.mode == "applied", applied.message
    assert (applied.applied.changed, applied.applied.after_count) == (3, 0)
    assert len(applied.applied.backup["ending_rows"]) == 3
    rows = _one(
        server,
        "SELECT category, allocated_usd, spent_usd, usage_pct, items FROM budgets_cycles "
        "ORDER BY category",
    )
    assert [row[0] for row in rows] == ["google_ads", "infrastructure", "openai"]
    assert [float(row[2]) for row in rows] == [17.5, 4.1, 28.9]
    newest = "SELECT cycle_id, category, allocated_usd, period_start, period_end FROM budgets " \
        "WHERE period_start = (SELECT max(period_start) FROM budgets)"  # fmt: skip
    new = _one(server, newest)
    end = before[0][3]
    assert {row[1]: float(row[2]) for row in new}["openai"] == 40.0
    assert {(row[3], row[4]) for row in new} == {(end, end + timedelta(days=7))}
    assert {row[0] for row in new} == {f"cycle-{end:%Y%m%d}"}
    assert over_budget(profile) == []  # the new cycle has spent nothing
    assert _run(NewBudgetCycle(profile)).mode == "nothing-to-do"

    # started early, the cycle just begun ends now and the next one begins
    early = _run(NewBudgetCycle(profile, early=True), apply=True)
    assert early.mode == "applied", early.message
    cut = _one(server, f"SELECT period_end FROM budgets WHERE period_start = '{end}'")[0][0]
    assert abs(cut - utc_now()) < timedelta(minutes=1)
    assert {row[3] for row in _one(server, newest)} == {cut}
    assert len(_one(server, "SELECT * FROM budgets_cycles")) == 6


def test_the_runbook_starts_the_new_cycle_then_closes_the_breaker_and_lifts_the_halt(
    workspace: Workspace, profile: Profile, server: PostgresServer
) -> None:
    spend_exactly(server, 1.047)
    ideas_sql(server, HALTED, ENDED_THREE_DAYS_AGO)
    run = workspace.opslib(
        "run", "budget-recovery", "--profile", "ideas", "-p", "new_cycle=true", "-p", "apply=true"
    )
    output = run.stdout + run.stderr
    assert "action:new_budget_cycle: applied plan" in output, output
    assert "action:reset_circuit_breaker: applied plan" in output
    assert "action:resume_pipeline: applied plan" in output
    assert _control(server, "circuit_breaker") == "closed"
    assert _control(server, "emergency_shutdown") == "off"
    assert float(_one(server, "SELECT max(usage_pct) FROM budgets_cycles")[0][0]) == 104.7


SQLITE_PROFILE = """name: budget-sqlite
description: a budget kept in SQLite with ISO text times
targets:
  database:
    url: sqlite:///{path}
costs:
  table: spend
  item: item_id
budget:
  table: budgets
  breaker: {{table: control}}
halt: {{table: control}}
"""


def test_on_sqlite_an_early_cycle_archives_the_spent_one_and_unblocks_a_resume(
    tmp_path: Path,
) -> None:
    database = tmp_path / "budget.db"
    with sqlite3.connect(database) as connection:
        connection.executescript(
            """CREATE TABLE budgets (category text, allocated_usd real, period_start text,
                                     period_end text);
            INSERT INTO budgets SELECT 'openai', 10, datetime('now', '-2 days'),
                                       datetime('now', '+5 days');
            CREATE TABLE spend (item_id text, category text, amount_usd real, created_at text);
            INSERT INTO spend VALUES ('a', 'openai', 6, datetime('now', '-1 day')),
                                     ('b', 'openai', 5, datetime('now', '-1 hour'));
            CREATE TABLE control (key text PRIMARY KEY, value text, updated_at text);
            INSERT INTO control VALUES ('circuit_breaker', 'open', datetime('now')),
                                       ('halt', 'on', datetime('now'));"""
        )
    profile_file = tmp_path / "budget.yaml"
    profile_file.write_text(SQLITE_PROFILE.format(path=database))
    profile = load_profile(str(profile_file))
    assert over_budget(profile) == [
        {"category": "openai", "percent": 110.0},
        {"category": "total", "percent": 110.0},
    ]
    assert SetHalt(profile, halt=False).plan().empty
    assert NewBudgetCycle(profile).plan().empty  # five days left: not without early=True
    cycle = NewBudgetCycle(profile, early=True)
    assert cycle.apply(cycle.plan()).changed == 1
    assert over_budget(profile) == []
    resume = SetHalt(profile, halt=False)
    assert resume.apply(resume.plan()).after_count == 0
    with sqlite3.connect(database) as connection:
        archived = connection.execute("SELECT spent_usd, items FROM budgets_cycles").fetchall()
        flag = connection.execute("SELECT value FROM control WHERE key = 'halt'").fetchone()
    assert archived == [(11.0, 2)] and flag == ("off",)
