"""The ideas manual carried by parameters/profiles/ideas.yaml, on the seeded demo (a real
PostgreSQL): the pipeline process, the 70/80/90 % machine levels, the 4 h / 6 h completion
time, the external services checked only where their variables are set, the backup taken
before a recovery, and the scheduled health check shutting down a spent budget itself.
One demo seeded in-process for the module; each test that changes it puts it back."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
from postgres_server import PostgresServer
from support import answering

from opslib.actions import execute
from opslib.actions.backup import TakeBackup
from opslib.actions.cleanup import Cleanup
from opslib.actions.maintenance import VacuumAnalyze
from opslib.archive.ledger import Ledger
from opslib.context import RunContext
from opslib.demo import ideas as ideas_demo
from opslib.notebooks import applies, find_runbook, runbook_paths
from opslib.profiles import Profile, load_profile
from opslib.runbook import Runbook
from opslib.schedule.entries import load_schedule
from opslib.status import Status

DATABASE = "ideas_manual"
GOOD_KEY = "sk-test-0123456789abcdef"
SERVICE_URLS = ("IDEAS_OPENAI_URL", "IDEAS_GOOGLE_ADS_URL", "IDEAS_POSTHOG_URL")


def _sql(server: PostgresServer, statement: str) -> list[tuple]:
    """One statement in the module's database; the rows it returns, if any."""
    engine = server.engine(DATABASE)
    with engine.begin() as connection:
        result = connection.exec_driver_sql(statement)
        rows = [tuple(row) for row in result] if result.returns_rows else []
    engine.dispose()
    return rows


@pytest.fixture(scope="module")
def demo(server: PostgresServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """The ideas demo in its own database and data folder, seeded once (in-process)."""
    root = tmp_path_factory.mktemp("manual-ideas")
    url = server.fresh_database(DATABASE)
    with pytest.MonkeyPatch.context() as patch:
        for name in [*SERVICE_URLS, "IDEAS_WEBHOOK_URL", "IDEAS_SMTP_HOST", "IDEAS_SERVICES"]:
            patch.delenv(name, raising=False)
        for name in [key for key in os.environ if key.startswith(("OPSLIB_", "IDEAS_"))]:
            patch.delenv(name)
        patch.setenv("IDEAS_DSN", url)
        patch.setenv("OPSLIB_DATA_DIR", str(root / "data"))
        planted = ideas_demo.seed(load_profile("ideas"))
        yield {"root": root, "planted": planted}


@pytest.fixture
def profile(demo: dict) -> Profile:
    return load_profile("ideas")


def _evaluate(profile: Profile, check: str, **args: object) -> dict[str, tuple[Status, str]]:
    finding = Runbook("manual-ideas", profile).evaluate(check, **args)
    assert not finding.skipped, f"{check}: {finding.skipped}"
    return {r.name: (r.status, r.summary, r.warning, r.critical) for r in finding.results}


def test_the_profile_carries_the_manuals_levels_schedule_and_symptoms(profile: Profile) -> None:
    levels = {
        check: (profile.check_settings(check).warning, profile.check_settings(check).critical)
        for check in (
            "host_memory", "disk_free", "processing_time", "http_endpoint", "pg_slowest_statements"
        )
    }  # fmt: skip
    assert levels == {
        "pg_slowest_statements": ("500", "1000"),  # milliseconds per call
        "host_memory": ("80%", "90%"),
        "disk_free": ("20:", "10:"),  # free space: 80 % and 90 % used
        "processing_time": ("4 h", "6 h"),
        "http_endpoint": ("5 s", "10 s"),
    }
    entries = {(e.job, e.profile): e for e in load_schedule()}
    assert entries["health-check", "ideas"].cron == "*/5 * * * *"
    assert entries["health-check", "ideas"].parameters == {"halt_on_emergency": True}
    assert entries["monthly-maintenance", "ideas"].parameters == {"apply": True}
    # every symptom opens a runbook that applies here; every quick command names one too
    symptoms = profile.manual.symptoms
    assert {"costs too high", "pipeline stuck in processing"} <= set(symptoms)
    assert all(applies(find_runbook(runbook), profile) for runbook in symptoms.values())
    for line in profile.manual.commands.values():
        words = line.split()
        assert (
            words[0] == "opslib"
            and "--profile" in words
            and words[words.index("--profile") + 1] == "ideas"
        )
        if words[1] == "run":
            assert words[2] in runbook_paths(), line


def test_the_morning_view_of_the_seeded_demo_reads_every_manual_number(profile: Profile) -> None:
    reached = _evaluate(profile, "database_reachable")
    assert reached["database_reachable"][0] is Status.OK
    machine = {**_evaluate(profile, "disk_free"), **_evaluate(profile, "host_memory")}
    assert {name for name in machine} == {
        "disk_free[app]", "disk_free[logs]", "disk_free[backups]", "host_memory",
    }  # fmt: skip
    assert machine["host_memory"][2:] == ("80%", "90%")
    assert machine["disk_free[app]"][1].endswith("for /opt/agentic-startup-studio")
    # a pipeline at work: the last hour has finished ideas, spend per service and ideas waiting
    completion = _evaluate(profile, "processing_time")["processing_time"]
    assert completion[0] is Status.OK and completion[2:] == ("4 h", "6 h")
    assert _evaluate(profile, "failure_rate", window_hours=1)["failure_rate"][0] is Status.OK
    services = _evaluate(profile, "service_cost")
    assert set(services) == {f"service_cost[{c}]" for c in ideas_demo.ALLOCATED}
    assert all(
        status is Status.OK and "-" not in summary for status, summary, *_ in services.values()
    )
    depth = _evaluate(profile, "queue_depth")["queue_depth"]
    assert depth[1] == "7 job(s) queued or processing"  # 3 stuck, 2 moving, 2 waiting
    patterns = _evaluate(profile, "log_error_patterns")["log_error_patterns"][1]
    assert patterns.startswith("3 distinct error pattern(s) in the last 24 h")
    # the manual's API rate limiting, from the lines the pipeline logged
    limited = _evaluate(profile, "log_rate_limits")["log_rate_limits"]
    # the planted one, and one of the random errors when it falls in the last 24 h
    assert limited[0] is Status.WARNING
    assert limited[1].split(" ", 1)[0] in {"1", "2"}, limited[1]
    assert limited[1].split(" ", 1)[1].startswith("rate-limit line(s)")


def test_the_pipeline_process_is_critical_when_absent_and_ok_when_it_runs(
    profile: Profile,
) -> None:
    (absent,) = _evaluate(profile, "process_running").values()
    assert absent[0] is Status.CRITICAL and absent[1].startswith("none running")
    # the manual's `python -m pipeline.main_pipeline`, by its command line
    stand_in = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(30)", "pipeline.main_pipeline"]
    )
    try:
        (running,) = _evaluate(profile, "process_running").values()
    finally:
        stand_in.terminate()
        stand_in.wait(5)
    assert running[0] is Status.OK and f"pid {stand_in.pid}" in running[1]


@pytest.fixture
def health_endpoint() -> Iterator[dict]:
    """A local HTTP endpoint answering GET with 200; keeps each request's headers."""
    seen: dict = {"requests": []}

    def answer(request: BaseHTTPRequestHandler) -> tuple[int, bytes]:
        seen["requests"].append(dict(request.headers))
        good = request.headers.get("Authorization") == f"Bearer {GOOD_KEY}"
        return 200 if good else 401, b"{}"

    with answering(answer) as base:
        seen["url"] = f"{base}/v1/models"
        yield seen


def test_external_services_are_checked_only_where_their_variable_is_set(
    profile: Profile, health_endpoint: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    finding = Runbook("manual-ideas", profile).evaluate("http_endpoint")
    assert finding.skipped == "no http"  # none set: off, not failing
    monkeypatch.setenv("IDEAS_OPENAI_URL", health_endpoint["url"])
    monkeypatch.setenv("OPENAI_API_KEY", GOOD_KEY)
    results = _evaluate(load_profile("ideas"), "http_endpoint")
    # Google Ads and PostHog stay off: no UNKNOWN for an address nobody gave
    assert list(results) == ["http_endpoint[openai]"]
    status, summary, warning, critical = results["http_endpoint[openai]"]
    assert (
        status is Status.OK and "answered 200" in summary and (warning, critical) == ("5 s", "10 s")
    )
    assert health_endpoint["requests"][0]["Authorization"] == f"Bearer {GOOD_KEY}"
    # the manual's key check: a key the API refuses
    monkeypatch.setenv("OPENAI_API_KEY", "sk-revoked-key-000000")
    (refused,) = _evaluate(load_profile("ideas"), "http_endpoint").values()
    assert refused[0] is Status.CRITICAL and "answered 401 in" in refused[1]
    assert refused[1].endswith("expected 200")
    assert "sk-" not in summary + refused[1]


def test_a_completion_past_six_hours_is_critical(profile: Profile, server: PostgresServer) -> None:
    recent = "completed_at > now() AT TIME ZONE 'UTC' - interval '1 hour' AND status = 'completed'"
    before = _sql(server, f"SELECT idea_id, started_at FROM ideas WHERE {recent}")
    assert before, "the demo finishes ideas within the hour"
    try:
        _sql(
            server,
            f"UPDATE ideas SET started_at = completed_at - interval '7 hours' WHERE {recent}",
        )
        (late,) = _evaluate(profile, "processing_time", window_hours=1).values()
        assert late[0] is Status.CRITICAL and "95th percentile 420.0 min" in late[1]
    finally:
        for idea, started in before:
            _sql(server, f"UPDATE ideas SET started_at = '{started}' WHERE idea_id = '{idea}'")


def test_a_backup_before_a_recovery_is_taken_and_dates_the_recovery_point(
    profile: Profile,
) -> None:
    (none,) = _evaluate(profile, "backup_age").values()
    assert none[0] is Status.CRITICAL and none[1].startswith("no backup")
    context = RunContext.current("backup", "ideas")
    taken = execute(TakeBackup(profile), context, Ledger, apply=True)
    assert taken.mode == "applied", taken.message
    (fresh,) = _evaluate(profile, "backup_age").values()
    assert fresh[0] is Status.OK
    assert any(profile.backup_dir().iterdir())


def test_the_scheduled_health_check_shuts_a_spent_budget_down_itself(
    demo: dict, server: PostgresServer, tmp_path: Path
) -> None:
    """The manual's 100 % level is an immediate shutdown: the shipped schedule's run, as
    cron starts it, applies the halt; the demo is seeded again afterwards."""
    _sql(server, "UPDATE budgets SET allocated_usd = 1")
    (entry,) = [e for e in load_schedule() if (e.job, e.profile) == ("health-check", "ideas")]
    env = {**os.environ, "OPSLIB_REPORTS_DIR": str(tmp_path / "reports")}
    try:
        run = subprocess.run(
            [sys.executable, "-m", "opslib", *entry.opslib_args(), "--format", "json"],
            env=env, capture_output=True, text=True, timeout=120, cwd=demo["root"],
        )  # fmt: skip
        assert run.returncode == 2, run.stdout + run.stderr
        document = json.loads(run.stdout)  # the manual's budget_report.json, per category
        assert "incident P1" in document["headline"]
        results = {result["name"]: result for result in document["results"]}
        assert results["budget_usage[openai]"]["status"] == "CRITICAL"
        assert results["budget_usage[openai]"]["value"] == pytest.approx(2890.0)
        halt = results["action:halt_pipeline"]["summary"]
        assert "applied" in halt, halt
        flag = _sql(server, "SELECT value FROM pipeline_control WHERE key = 'emergency_shutdown'")
        assert flag == [("on",)]
    finally:
        ideas_demo.seed(load_profile("ideas"))


def test_the_weekly_maintenance_clears_rotated_logs_past_30_days_and_vacuums(
    profile: Profile, demo: dict, server: PostgresServer
) -> None:
    logs = demo["root"] / "data" / "ideas" / "logs"
    old = logs / "pipeline.log.9.gz"
    old.write_bytes(b"")
    forty_days_ago = time.time() - 40 * 86400
    os.utime(old, (forty_days_ago, forty_days_ago))
    context = RunContext.current("monthly-maintenance", "ideas")
    cleared = execute(Cleanup(profile, "rotated_logs"), context, Ledger, apply=True)
    assert cleared.mode == "applied", cleared.message
    assert (
        not old.exists()
        and (logs / "pipeline.log.1.gz").exists()
        and (logs / "pipeline.log").exists()
    )
    vacuumed = execute(VacuumAnalyze(profile), context, Ledger, apply=True)
    assert vacuumed.mode == "applied", vacuumed.message
    done = _sql(server, "SELECT relname FROM pg_stat_user_tables WHERE last_vacuum IS NOT NULL")
    assert {"ideas", "spend"} <= {name for (name,) in done}
    # the manual's table activity (pg_stat_user_tables inserts, updates, deletes)
    finding = Runbook("manual-ideas", profile).evaluate("pg_dead_tuples")
    activity = finding.table.loc["ideas", ["inserts", "updates", "deletes"]]
    assert list(activity) == [ideas_demo.IDEAS, 0, 0]


def _steps(runbook: str) -> list[str]:
    """The code cells of a runbook, each as its source."""
    cells = json.loads(find_runbook(runbook).read_text())["cells"]
    return ["".join(cell["source"]) for cell in cells if cell["cell_type"] == "code"]


def test_every_idea_is_counted_by_stage_and_status_finished_ones_too(
    profile: Profile, server: PostgresServer
) -> None:
    finding = Runbook("manual-ideas", profile).evaluate("queue_stages")
    assert not finding.skipped, finding.skipped
    (result,) = finding.results
    stored = _sql(server, "SELECT current_stage, status, count(*) FROM ideas GROUP BY 1, 2")
    processing = sum(count for _stage, status, count in stored if status == "processing")
    assert result.status is Status.OK and result.value == processing
    assert result.summary.startswith(f"{processing} of {ideas_demo.IDEAS} job(s) processing")
    table = finding.table
    assert {(stage, status): count for stage, status, count in stored} == {
        (stage, status): table.loc[stage, status]
        for stage in table.index
        for status in table.columns
        if table.loc[stage, status]
    }
    assert "completed" in table.columns  # queue_depth leaves the finished ideas out
    assert 'rb.evaluate("queue_stages")' in _steps("morning-check")


def test_slow_processing_shows_disk_traffic_and_who_listens_on_the_database_port(
    tmp_path: Path,
) -> None:
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        port = listening.getsockname()[1]
        text = Path("parameters/profiles/ideas.yaml").read_text()
        assert "    database: 5432\n" in text
        path = tmp_path / "ideas.yaml"
        path.write_text(text.replace("    database: 5432\n", f"    database: {port}\n"))
        profile = load_profile(str(path))
        assert applies(find_runbook("slow-processing"), profile)
        runbook = Runbook("manual-ideas", profile)
        (held,) = runbook.evaluate("tcp_listener").results
        assert held.value == 1 and f"pid {os.getpid()}" in held.summary, held.summary
    (free,) = runbook.evaluate("tcp_listener").results
    assert free.value == 0 and free.summary == f"database: nothing listens on port {port}"
    disks = runbook.evaluate("disk_io", window_s=0.2)
    assert {"device", "reads_per_s", "write_mb_s", "util_pct"} <= set(disks.table.columns)
    assert disks.results[0].status is Status.OK and 0 <= disks.results[0].value <= 100
    steps = _steps("slow-processing")
    assert 'rb.evaluate("disk_io")' in steps and 'rb.evaluate("tcp_listener")' in steps


def test_heavy_statements_show_their_cache_hits_and_analyze_gives_column_statistics(
    profile: Profile, server: PostgresServer
) -> None:
    _sql(server, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    _sql(server, "SELECT count(*) FROM spend WHERE amount_usd > 0.01")
    runbook = Runbook("manual-ideas", profile)
    cache = runbook.evaluate("pg_statement_cache")
    assert cache.results[0].status is Status.OK, cache.results[0].summary
    assert 0 <= cache.results[0].value <= 100
    assert cache.results[0].value == cache.table["hit_pct"].min()
    assert list(cache.table["total_ms"]) == sorted(cache.table["total_ms"], reverse=True)
    _sql(server, "CREATE TABLE fresh_ideas AS SELECT idea_id, status FROM ideas")
    try:
        before = runbook.evaluate("pg_column_stats").results[0]
        assert before.value >= 1 and "fresh_ideas" in before.summary.split("never analyzed:")[1]
        _sql(server, "ANALYZE fresh_ideas")
        after = runbook.evaluate("pg_column_stats")
        assert after.results[0].value == before.value - 1
        fresh = after.table[after.table["table"] == "fresh_ideas"]
        assert set(fresh["column"]) == {"idea_id", "status"}
        distinct = fresh.set_index("column")["n_distinct"]
        assert distinct["idea_id"] == -1  # every id distinct: PostgreSQL says -1 (all rows)
    finally:
        _sql(server, "DROP TABLE fresh_ideas")
    steps = _steps("slow-processing")
    assert 'rb.evaluate("pg_statement_cache")' in steps
    assert 'rb.evaluate("pg_column_stats")' in steps


def test_the_monthly_budget_trend_compares_the_running_cycle_with_the_one_before(
    profile: Profile, server: PostgresServer
) -> None:
    runbook = Runbook("manual-ideas", profile)
    alone = runbook.evaluate("budget_trend")
    assert alone.results[0].status is Status.OK
    assert alone.results[0].value == alone.table["per_day_usd"][0] > 0
    assert alone.results[0].summary.endswith("(no earlier cycle to compare)")
    (start,) = _sql(server, "SELECT min(period_start) FROM budgets")[0]
    _sql(
        server,
        "INSERT INTO budgets SELECT 'cycle-before', category, allocated_usd, "
        "period_start - interval '7 days', period_start FROM budgets",
    )
    # $35 over the seven days before: $5 a day, in categories the running cycle has too
    _sql(
        server,
        f"INSERT INTO spend (idea_id, category, amount_usd, created_at) SELECT 'old-' || n, "
        f"'openai', 1.75, timestamp '{start}' - n * interval '8 hours' "
        "FROM generate_series(1, 20) n",
    )
    try:
        trend = runbook.evaluate("budget_trend")
        result, table = trend.results[0], trend.table
        assert list(table["start"]) == [start - timedelta(days=7), start]
        assert table["spent_usd"][0] == 35.0 and table["per_day_usd"][0] == 5.0
        assert table["allocated_usd"][0] == sum(ideas_demo.ALLOCATED.values())
        running = table["per_day_usd"][1]
        change = round(100 * (running / 5.0 - 1), 1)
        assert result.status is Status.OK and result.value == running
        assert result.summary.endswith(f", {change:+g}% on the cycle before ($5.00 a day)")
    finally:
        _sql(server, "DELETE FROM spend WHERE starts_with(idea_id, 'old-')")
        _sql(server, "DELETE FROM budgets WHERE cycle_id = 'cycle-before'")
    assert 'rb.evaluate("budget_trend")' in _steps("monthly-maintenance")
