"""The ideas pipeline: a budget sentinel with 80 / 95 / 100 % levels, a circuit breaker,
the five-minute health check and its notifications, severity, and pg_stat_statements,
all against a real PostgreSQL seeded by `opslib demo ideas`."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import pytest
import sqlalchemy as sa
from postgres_server import PostgresServer
from support import Workspace, ideas_sql, spend_exactly

from opslib.alerting.severity import classify
from opslib.checks import CheckResult
from opslib.demo.tables import FOLDER_MARKER
from opslib.errors import ProfileError
from opslib.probes.budget import usage
from opslib.probes.logs import unseen_patterns
from opslib.probes.pg_maintenance import top_statements
from opslib.profiles import load_profile
from opslib.runbook.service_state import ServiceState
from opslib.status import Status


def _fix_the_demo(server: PostgresServer) -> None:
    ideas_sql(
        server,
        "UPDATE ideas SET status = 'completed', completed_at = updated_at WHERE status = 'processing'",
        "UPDATE budgets SET allocated_usd = allocated_usd * 2",
        "UPDATE pipeline_control SET value = 'closed' WHERE key = 'circuit_breaker'",
    )


def _lines(output: str, prefix: str) -> list[str]:
    return [line.strip() for line in output.splitlines() if line.strip().startswith(prefix)]


def test_health_check_notifies_once_on_an_unchanged_demo_and_once_on_recovery(
    workspace: Workspace, ideas: dict, server: PostgresServer, receiver: list[dict]
) -> None:
    workspace.env["IDEAS_WEBHOOK_URL"] = receiver[0]["url"]
    first = workspace.opslib("run", "health-check", "--profile", "ideas")
    second = workspace.opslib("run", "health-check", "--profile", "ideas")
    assert (first.returncode, second.returncode) == (2, 2), first.stdout + first.stderr
    messages = receiver[1:]
    assert len(messages) == 1, messages  # hard after two runs in a row: told on the second
    text = messages[0]["text"]
    assert text.startswith("[opslib] CRITICAL health-check on ideas")
    report = sorted(workspace.reports.rglob("health-check--ideas--*.html"))[-1].read_text()
    for stuck in ideas["stuck"]:
        assert stuck in report
    assert "stuck_jobs: OK -> CRITICAL" in text
    assert "budget_usage[openai]: OK -> WARNING" in text
    assert "incident P2" in text and "report: " in text
    assert "log_unseen_patterns" not in text  # the first scan learnt the old errors

    _fix_the_demo(server)
    third = workspace.opslib("run", "health-check", "--profile", "ideas")
    assert third.returncode == 0, third.stdout + third.stderr
    assert len(receiver[1:]) == 2
    recovery = receiver[2]["text"]
    assert recovery.startswith("[opslib] RECOVERED health-check on ideas")
    assert "stuck_jobs: CRITICAL -> OK" in recovery and "circuit_breaker: WARNING -> OK" in recovery


def test_a_webhook_whose_address_is_unset_is_off_not_failing(
    workspace: Workspace, ideas: dict
) -> None:
    for _ in range(2):
        run = workspace.opslib("run", "health-check", "--profile", "ideas")
    assert "not notified, channel ops: its address is set to nothing" in run.stdout
    assert "failed" not in run.stdout


def test_budget_past_95_percent_is_a_warning_at_the_throttle_level(
    workspace: Workspace, ideas: dict, server: PostgresServer
) -> None:
    spend_exactly(server, 0.96)
    run = workspace.opslib("run", "budget-status", "--profile", "ideas")
    assert run.returncode == 1, run.stdout + run.stderr
    (total,) = _lines(run.stdout, "WARNING  budget_usage[total]")
    assert "$59.52 of $62.00 spent (96.0%)" in total and "past the 95% throttle level" in total
    assert "nothing to do: no halt needed" in run.stdout
    notebook = next(workspace.reports.rglob("budget-status--ideas--*.ipynb")).read_text()
    assert ServiceState.CRITICAL.value in notebook  # shown only as the state's output


def test_budget_past_100_percent_is_critical_and_carries_the_halt_plan(
    workspace: Workspace, ideas: dict, server: PostgresServer
) -> None:
    spend_exactly(server, 1.01)
    run = workspace.opslib("run", "budget-status", "--profile", "ideas")
    assert run.returncode == 2, run.stdout + run.stderr
    assert _lines(run.stdout, "CRITICAL budget_usage[total]")
    assert "the budget is exhausted" in run.stdout
    (halt,) = _lines(run.stdout, "OK       action:halt_pipeline")
    assert "dry run: would halt the pipeline: set emergency_shutdown from off to on" in halt
    assert "incident P1" in run.stdout
    notebook = next(workspace.reports.rglob("budget-status--ideas--*.ipynb")).read_text()
    assert ServiceState.EMERGENCY.value in notebook
    # nothing was halted without apply
    engine = server.engine("ideas")
    with engine.connect() as connection:
        flag = connection.exec_driver_sql(
            "SELECT value FROM pipeline_control WHERE key = 'emergency_shutdown'"
        ).scalar_one()
    engine.dispose()
    assert flag == "off"


def test_a_category_spending_without_an_allocation_is_named(
    workspace: Workspace, ideas: dict, server: PostgresServer
) -> None:
    ideas_sql(
        server,
        "INSERT INTO spend (idea_id, category, amount_usd, created_at) "
        "VALUES ('idea-0002', 'posthog', 1.25, now() AT TIME ZONE 'UTC')",
    )
    run = workspace.opslib("run", "budget-status", "--profile", "ideas")
    (line,) = _lines(run.stdout, "WARNING  budget_usage[posthog]")
    assert "$1.25 spent with no allocation this period" in line


@pytest.mark.parametrize(
    ("value", "line"),
    [
        ("open", "CRITICAL circuit_breaker: circuit breaker open since"),
        ("jammed", "UNKNOWN  circuit_breaker: pipeline_control.circuit_breaker is 'jammed'"),
    ],
)
def test_the_circuit_breaker_state_is_read_from_the_control_table(
    workspace: Workspace, ideas: dict, server: PostgresServer, value: str, line: str
) -> None:
    ideas_sql(
        server, f"UPDATE pipeline_control SET value = '{value}' WHERE key = 'circuit_breaker'"
    )
    run = workspace.opslib("run", "emergency-halt", "--profile", "ideas")
    assert _lines(run.stdout, line), run.stdout


def test_slow_statements_by_mean_and_total_and_without_the_extension(
    workspace: Workspace, ideas: dict, server: PostgresServer
) -> None:
    engine = server.engine("ideas")
    with engine.connect() as connection:
        connection.exec_driver_sql("SELECT pg_sleep(0.3), 'slow report'")
        for _ in range(40):
            connection.exec_driver_sql("SELECT count(*) FROM spend WHERE amount_usd > 0.01")
    engine.dispose()
    profile = load_profile("ideas")
    by_mean = top_statements(profile, by="mean")
    assert by_mean.value >= 300 and "pg_sleep" in by_mean.summary
    by_total = top_statements(profile, by="total")
    assert list(by_total.table["total_ms"]) == sorted(by_total.table["total_ms"], reverse=True)
    assert list(by_mean.table["mean_ms"]) == sorted(by_mean.table["mean_ms"], reverse=True)
    assert not by_total.table["query"].str.contains("pg_stat_statements").any()

    ideas_sql(server, "DROP EXTENSION pg_stat_statements")
    run = workspace.opslib("run", "slow-processing", "--profile", "ideas")
    absent = _lines(run.stdout, "UNKNOWN  pg_top_statements") + _lines(
        run.stdout, "UNKNOWN  pg_slowest_statements"
    )
    assert len(absent) == 2 and all("pg_stat_statements is not installed" in a for a in absent)
    assert _lines(run.stdout, "CRITICAL stuck_jobs")  # the rest of the runbook still ran
    report = next(workspace.reports.rglob("slow-processing--ideas--*.html")).read_text()
    assert "index(es) unused since the statistics reset" in report


def _log(folder: Path, *lines: str) -> None:
    with (folder / "pipeline.log").open("a", encoding="utf-8") as stream:
        stream.writelines(line + "\n" for line in lines)


def test_an_error_pattern_is_news_once_and_history_is_not(
    workspace: Workspace, ideas: dict
) -> None:
    profile = load_profile("ideas")
    folder = workspace.data / "ideas" / "logs"
    first = unseen_patterns(profile, scan="t")
    assert first.value == 0 and first.summary.startswith("first scan")
    _log(
        folder,
        "2026-11-23 10:00:00,000 - pipeline.research - ERROR - evidence collector timed out after 30 s for idea idea-0999",
        "2026-11-23 10:00:01,000 - pipeline.deck - ERROR - vector index shard 7 corrupt at page 12",
        "2026-11-23 10:00:02,000 - pipeline.deck - ERROR - vector index shard 9 corrupt at page 40",
    )
    news = unseen_patterns(profile, scan="t")
    assert news.value == 1, news.summary
    assert "vector index" in news.summary and "(2x)" in news.summary
    assert list(news.table["count"]) == [2]  # the timeout pattern was known from the start
    # still news on the next scans, long enough for a "hard after two runs" alert
    again = unseen_patterns(profile, scan="t")
    assert again.value == 1 and "first seen in the last 60 min" in again.summary
    later = unseen_patterns(profile, scan="t", fresh_minutes=0)
    assert later.value == 0 and "0 error line(s) of known patterns" in later.summary


def test_severity_takes_the_most_urgent_matching_level() -> None:
    rules = {"P3": ["*=WARNING"], "P1": ["budget_usage=CRITICAL"], "P2": ["*=CRITICAL"]}
    results = [
        CheckResult(name="disk_free[data]", status=Status.WARNING),
        CheckResult(name="budget_usage[total]", status=Status.CRITICAL),
    ]
    assert str(classify(results, rules)).startswith("incident P1")
    assert classify(results[:1], rules).level == "P3"
    assert classify([CheckResult(name="x", status=Status.OK)], rules) is None
    assert classify(results[:1], {"P2": ["disk_free[data]=WARNING"]}).level == "P2"


@pytest.mark.parametrize(
    ("rule", "problem"),
    [
        ("budget_usage=RED", "is not CHECK=STATUS"),
        ("budget_usge=CRITICAL", "no such check in severity.P1[0]"),
    ],
)
def test_a_bad_severity_rule_is_one_clear_error(tmp_path: Path, rule: str, problem: str) -> None:
    profile = tmp_path / "p.yaml"
    profile.write_text(f"name: p\nseverity:\n  P1: ['{rule}']\n")
    with pytest.raises(ProfileError, match=re.escape(problem)):
        load_profile(str(profile))


def test_the_demo_refuses_a_database_it_did_not_create(
    workspace: Workspace, server: PostgresServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    server.fresh_database("foreign_ideas")
    engine = sa.create_engine(server.url("foreign_ideas"))
    with engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE pipeline_control (key text, value text)")
    engine.dispose()
    workspace.env["IDEAS_DSN"] = server.url("foreign_ideas")
    seeded = workspace.opslib("demo", "ideas")
    assert seeded.returncode != 0
    assert "already has table(s) pipeline_control that opslib did not create" in seeded.stderr
    assert "Traceback" not in seeded.stderr


def test_the_demo_never_empties_a_log_folder_it_did_not_create(
    workspace: Workspace, server: PostgresServer, tmp_path: Path
) -> None:
    workspace.env["IDEAS_DSN"] = server.fresh_database("ideas_logs")
    production = tmp_path / "production-logs"
    production.mkdir()
    (production / "pipeline.log").write_text("precious\n")
    workspace.env["IDEAS_LOG_DIR"] = str(production)
    seeded = workspace.opslib("demo", "ideas")
    assert seeded.returncode == 3 and "holds files opslib did not create" in seeded.stderr
    assert (production / "pipeline.log").read_text() == "precious\n"
    engine = sa.create_engine(server.url("ideas_logs"))
    with engine.connect() as connection:  # refused before the database was touched
        assert not sa.inspect(connection).get_table_names()
    engine.dispose()


def test_the_demo_with_its_database_down_keeps_the_log_folder(workspace: Workspace) -> None:
    """Demos never delete before they know they can build: PostgreSQL down once left the
    demo's log folder empty."""
    with socket.socket() as closed:  # a port nothing listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    workspace.env["IDEAS_DSN"] = f"postgresql://ideas@127.0.0.1:{port}/ideas?connect_timeout=2"
    logs = workspace.data / "ideas" / "logs"
    logs.mkdir(parents=True)
    (logs / FOLDER_MARKER).write_text("created by opslib demo\n")  # the demo's own folder
    (logs / "pipeline.log").write_text("yesterday's story\n")
    seeded = workspace.opslib("demo", "ideas")
    assert seeded.returncode == 3, seeded.stdout + seeded.stderr
    assert len(seeded.stderr.strip().splitlines()) == 1 and "Traceback" not in seeded.stderr
    assert (logs / "pipeline.log").read_text() == "yesterday's story\n"


def test_a_period_with_no_spend_yet_and_an_unused_category(
    workspace: Workspace, ideas: dict, server: PostgresServer
) -> None:
    ideas_sql(
        server,
        "DELETE FROM spend",
        "INSERT INTO budgets SELECT cycle_id, 'posthog', 0, period_start, period_end "
        "FROM budgets LIMIT 1",
    )
    results = {metric.label: metric for metric in usage(load_profile("ideas"))}
    assert results["total"].value == 0.0 and results["openai"].value == 0.0
    assert "posthog" not in results  # nothing allocated, nothing spent: nothing to say
