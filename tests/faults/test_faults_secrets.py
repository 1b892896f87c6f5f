"""Secret canaries through real runbooks, on the demo and on a PostgreSQL profile, in runs
that succeed and runs that fail: a database password (in the DSN's userinfo, in its
`?password=` parameter, alone in a log line), an API key an endpoint echoes back, a
webhook URL, an SMTP password, a PostgreSQL ledger's password. None may reach the archive
(every file, the ledger's bytes, the diagnostic package's members), the output, or a
message sent."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import psycopg
import pytest
import yaml
from faults_support import (
    API_KEY,
    DB_PASSWORD,
    QUERY_PASSWORD,
    SMTP_PASSWORD,
    WEBHOOK_TOKEN,
    WRONG_PASSWORD,
    GuardedDatabase,
    Scenario,
    assert_clean_archive,
    assert_within,
    bound,
    free_port,
    run_opslib,
    runbook_cells,
    sqlite_digest,
    statuses,
)
from support import Workspace, answering

from opslib.clock import utc_now
from opslib.status import Status

ANY_FINDING = statuses(Status.OK, Status.WARNING, Status.CRITICAL)
PROBLEMS = statuses(Status.WARNING, Status.CRITICAL)
CELL_LEAKS = "fault-secrets"  # a runbook whose cells print and raise with the secrets
LEAKING_CELLS = (
    'rb.evaluate("database_reachable")',
    "import os\nprint({name: os.environ[name] for name in sorted(os.environ) if 'FAULT' in name})",
    "import os\nraise RuntimeError(f\"cannot log in with {os.environ['FAULT_PASSWORD_ALONE']}\")",
)


@pytest.fixture
def echo_endpoint() -> Iterator[str]:
    """A health endpoint that answers with the Authorization header it was sent, as a
    misconfigured debug endpoint does (not JSON, so opslib shows the start of it)."""

    def answer(request: BaseHTTPRequestHandler) -> tuple[int, bytes]:
        return 200, f"unauthorized: {request.headers.get('Authorization', '')}".encode()

    with answering(answer) as base:
        yield f"{base}/health"


@dataclass
class Stage:
    workspace: Workspace
    database: GuardedDatabase
    receiver: list[dict]
    echo_url: str

    @property
    def webhook_url(self) -> str:
        return f"{self.receiver[0]['url']}/{WEBHOOK_TOKEN}"

    def profile(self, name: str, data: dict) -> str:
        path = self.workspace.root / f"{name}.yaml"
        path.write_text(yaml.safe_dump({"name": name, **data}, sort_keys=False))
        return str(path)

    def log(self, path: Path, *messages: str) -> None:
        """ERROR lines of the last minutes, in the demo's own layout."""
        path.parent.mkdir(parents=True, exist_ok=True)
        now = utc_now()
        with path.open("a") as log:
            for minutes, message in enumerate(messages, start=1):
                stamp = (now - timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%SZ")
                log.write(f"{stamp} ERROR   {message}\n")


NOTIFY = {
    "hard_after": 1,
    "channels": {
        "chat": {"webhook": {"url": "${FAULT_WEBHOOK_URL}", "timeout": "2 s"}},
        "mail": {  # nothing listens there: the message waits in the ledger for the next run
            "smtp": {
                "host": "127.0.0.1",
                "port": 1,
                "username": "opslib",
                "password": "${FAULT_SMTP_PASSWORD}",
                "sender": "opslib@example.com",
                "to": ["oncall@example.com"],
                "timeout": "2 s",
            }
        },
    },
}


@contextlib.contextmanager
def demo_with_secrets(stage: Stage) -> Iterator[str]:
    """The demo with an API-keyed endpoint, a webhook and a mail channel; its log shows
    the API key, the SMTP password and the webhook URL each on their own."""
    workspace = stage.workspace
    data = yaml.safe_load((workspace.home / "parameters" / "profiles" / "demo.yaml").read_text())
    data.pop("name")
    data["targets"]["http"] = {
        "api": {
            "url": "${FAULT_ECHO_URL}",
            "headers": {"Authorization": "Bearer ${FAULT_API_KEY}"},
            "expect_json": {"ok": True},
            "connect_timeout": "1 s",
            "read_timeout": "2 s",
        }
    }
    data["notify"] = NOTIFY
    workspace.env.update(
        FAULT_ECHO_URL=stage.echo_url,
        FAULT_API_KEY=API_KEY,
        FAULT_WEBHOOK_URL=stage.webhook_url,
        FAULT_SMTP_PASSWORD=SMTP_PASSWORD,
        FAULT_PASSWORD_ALONE=SMTP_PASSWORD,
    )
    stage.log(
        workspace.data / "demo" / "logs" / "pipeline.log",
        f"upstream refused API key {API_KEY}",
        f"smtp login refused for password {SMTP_PASSWORD}",
        f"webhook post to {stage.webhook_url} timed out",
    )
    yield stage.profile("secrets-demo", data)


def _postgres(stage: Stage, name: str, dsn: str, password: str) -> str:
    """A PostgreSQL profile on the guarded server; its log shows `password` on its own
    and the whole DSN."""
    workspace = stage.workspace
    logs = workspace.root / f"{name}-logs"
    stage.log(
        logs / "worker.log",
        f"password authentication failed; the worker retried with {password}",
        f"could not connect to {dsn}",
    )
    workspace.env.update(
        FAULT_PG_DSN=dsn, FAULT_WEBHOOK_URL=stage.webhook_url, FAULT_PASSWORD_ALONE=password
    )
    return stage.profile(
        name,
        {
            "targets": {
                "database": {
                    "url": "${FAULT_PG_DSN}",
                    "connect_timeout": "2 s",
                    "statement_timeout": "2 s",
                    "lock_timeout": "1 s",
                },
                "logs": {"paths": [f"{logs}/*.log"]},
            },
            "queue": {"table": "jobs", "stuck_after": "30 min"},
            "notify": {"hard_after": 1, "channels": {"chat": NOTIFY["channels"]["chat"]}},
        },
    )


@contextlib.contextmanager
def postgres_password_in_userinfo(stage: Stage) -> Iterator[str]:
    yield _postgres(stage, "pg-userinfo", stage.database.dsn(), DB_PASSWORD)


@contextlib.contextmanager
def postgres_password_in_query(stage: Stage) -> Iterator[str]:
    yield _postgres(stage, "pg-query", stage.database.query_dsn(), QUERY_PASSWORD)


@contextlib.contextmanager
def postgres_wrong_password(stage: Stage) -> Iterator[str]:
    yield _postgres(stage, "pg-wrong", stage.database.dsn(WRONG_PASSWORD), WRONG_PASSWORD)


@contextlib.contextmanager
def postgres_down(stage: Stage) -> Iterator[str]:
    """The query-password DSN pointing at a port nothing listens on."""
    dsn = stage.database.query_dsn().replace(
        f"port={stage.database.server.port}", f"port={free_port()}"
    )
    yield _postgres(stage, "pg-down", dsn, QUERY_PASSWORD)


@contextlib.contextmanager
def postgres_ledger(stage: Stage) -> Iterator[str]:
    """The ledger in PostgreSQL, reached with the pipeline role's password."""
    with stage.database.connect() as admin:
        admin.execute("DROP DATABASE IF EXISTS ledger WITH (FORCE)")
        admin.execute("CREATE DATABASE ledger OWNER pipeline")
    stage.workspace.env["OPSLIB_LEDGER_URL"] = stage.database.dsn(database="ledger")
    yield _postgres(stage, "pg-ledger", stage.database.query_dsn(), QUERY_PASSWORD)
    with psycopg.connect(stage.database.dsn(database="ledger")) as ledger:
        rows = ledger.execute(
            "SELECT string_agg(t::text, ' ') FROM (SELECT * FROM runs) t "
            "UNION ALL SELECT string_agg(t::text, ' ') FROM (SELECT * FROM check_results) t"
        ).fetchall()
    recorded = " ".join(str(text) for (text,) in rows)
    assert "stuck_jobs" in recorded, "the run was not recorded in the PostgreSQL ledger"
    assert_clean_archive(stage.workspace.reports, recorded)


def _run(runbook: str, *extra: str) -> tuple[str, ...]:
    return ("run", runbook, "--timeout", "20", *extra)


SCENARIOS = [
    Scenario("secrets-demo-morning-check", "API key echoed, webhook, SMTP down, log lines",
             demo_with_secrets, _run("morning-check"), PROBLEMS, bound(20)),
    Scenario("secrets-demo-diagnostic-package", "the same, packed for a second-level engineer",
             demo_with_secrets, _run("diagnostic-package", "-p", "operator=alice"),
             ANY_FINDING, bound(20)),
    Scenario("secrets-demo-cell-raises", "a cell prints the secrets and raises with one",
             demo_with_secrets, _run(CELL_LEAKS, "--format", "json"),
             statuses(Status.UNKNOWN), bound(20)),
    Scenario("secrets-pg-userinfo-morning-check", "DSN user:password@, password alone in a log",
             postgres_password_in_userinfo, _run("morning-check", "--format", "nagios"),
             PROBLEMS, bound(20)),
    Scenario("secrets-pg-query-high-error-rate", "DSN ?password=, password alone in a log",
             postgres_password_in_query, _run("high-error-rate", "--format", "json"),
             PROBLEMS, bound(20)),
    Scenario("secrets-pg-wrong-password-morning-check", "the DSN's password is refused",
             postgres_wrong_password, _run("morning-check"), statuses(Status.CRITICAL),
             bound(20)),
    Scenario("secrets-pg-down-apply", "stuck-pipeline -p apply=true, server down, ?password=",
             postgres_down, _run("stuck-pipeline", "-p", "apply=true", "--format", "json"),
             statuses(Status.CRITICAL), bound(20)),
    Scenario("secrets-pg-cell-raises", "a cell prints the DSN and raises with the password",
             postgres_password_in_query, _run(CELL_LEAKS, "--format", "json"),
             statuses(Status.UNKNOWN), bound(20)),
    Scenario("secrets-postgres-ledger", "OPSLIB_LEDGER_URL carries the pipeline password",
             postgres_ledger, _run("stuck-pipeline", "--format", "json"), PROBLEMS, bound(20)),
    Scenario("secrets-demo-profile-check", "profile check on the demo with secrets",
             demo_with_secrets, ("profile", "check"), PROBLEMS, bound(2)),
    Scenario("secrets-pg-wrong-password-profile-check", "profile check, password refused",
             postgres_wrong_password, ("profile", "check"), statuses(Status.CRITICAL),
             bound(2)),
]  # fmt: skip


@pytest.mark.parametrize("scenario", SCENARIOS, ids=str)
def test_secret_canaries_reach_neither_archive_nor_output(
    scenario: Scenario,
    workspace: Workspace,
    guarded_db: GuardedDatabase,
    receiver: list[dict],
    echo_endpoint: str,
) -> None:
    workspace.add_runbook(CELL_LEAKS, *runbook_cells(CELL_LEAKS, *LEAKING_CELLS))
    demo_database = workspace.data / "demo" / "pipeline.db"
    before = (sqlite_digest(demo_database), guarded_db.digest())
    with scenario.setup(Stage(workspace, guarded_db, receiver, echo_endpoint)) as profile:
        command = scenario.command
        command = (
            (*command, profile) if command[0] == "profile" else (*command, "--profile", profile)
        )
        ran = run_opslib(workspace.env, workspace.root, *command, kill_after_s=2 * scenario.bound_s)
    assert_within(scenario.name, ran.elapsed_s, scenario.bound_s)
    assert Status(ran.returncode) in scenario.expected, ran.output
    assert "Traceback" not in ran.stderr
    sent = [str(message) for message in receiver[1:]]
    if scenario.command[0] == "run" and Status(ran.returncode) is not Status.OK:
        assert sent, "a run that changed state sent nothing: the message was never checked"
    if "diagnostic-package" in scenario.command:
        assert list(workspace.reports.rglob("*.tar.gz")), "no package: its members unchecked"
    assert_clean_archive(workspace.reports, ran.stdout, ran.stderr, *sent)
    assert (sqlite_digest(demo_database), guarded_db.digest()) == before
