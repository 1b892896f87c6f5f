"""HTML, template and code injection: markup and template syntax in a log line, in a
job's fields, in a parameter and in a profile's description reach the report escaped,
are never evaluated, and a parameter never runs as code."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from faults_support import (
    Scenario,
    assert_clean_archive,
    assert_within,
    bound,
    run_opslib,
    runbook_cells,
    sqlite_digest,
    statuses,
)
from support import Workspace

from opslib.clock import utc_now
from opslib.status import Status

# what must never appear in a page: live markup, or a template that was evaluated
LIVE = (b"<script>alert(", b"<img src=x onerror", b"xsstmpl")
TEMPLATE = "{{'xss'~'tmpl'}}${'xss'+'tmpl'}"
PWNED = "pwned-by-a-parameter"
PAYLOAD = (
    f'<script>alert("xss")</script><img src=x onerror=alert(1)>{TEMPLATE}'
    f"'); import pathlib; pathlib.Path('{PWNED}').touch() #"
)
DESCRIBED = "fault-described"


@contextlib.contextmanager
def log_line(workspace: Workspace) -> Iterator[str]:
    """The payload as an error message in the demo's log, the commonest pattern."""
    stamp = (utc_now() - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    with (workspace.data / "demo" / "logs" / "pipeline.log").open("a") as log:
        log.writelines(f"{stamp} ERROR   upstream said {PAYLOAD}\n" for _ in range(50))
    yield "demo"


@contextlib.contextmanager
def job_fields(workspace: Workspace) -> Iterator[str]:
    """The payload as the stage and the error of the stuck jobs a reset would touch."""
    with contextlib.closing(sqlite3.connect(workspace.data / "demo" / "pipeline.db")) as db:
        db.execute("UPDATE jobs SET stage = ?, error = ? WHERE status = 'processing'",
                   (PAYLOAD, PAYLOAD))  # fmt: skip
        db.commit()
    yield "demo"


@contextlib.contextmanager
def described_profile(workspace: Workspace) -> Iterator[str]:
    data = yaml.safe_load((workspace.home / "parameters" / "profiles" / "demo.yaml").read_text())
    data.update(name="described", description=PAYLOAD)
    path = workspace.root / "described.yaml"
    path.write_text(yaml.safe_dump(data))
    workspace.add_runbook(DESCRIBED, *runbook_cells(DESCRIBED, 'rb.evaluate("stuck_jobs")'))
    yield str(path)


@contextlib.contextmanager
def demo_only(_workspace: Workspace) -> Iterator[str]:
    yield "demo"


SCENARIOS = [
    Scenario("inject-log-line", "markup and templates in 50 ERROR log lines", log_line,
             ("run", "high-error-rate", "--timeout", "20"), statuses(Status.WARNING, Status.CRITICAL), bound(20)),
    Scenario("inject-job-fields", "markup and templates as the stuck jobs' stage and error",
             job_fields, ("run", "stuck-pipeline", "--timeout", "20"), statuses(Status.WARNING), bound(20)),
    Scenario("inject-parameter", "approve=<markup, templates, a quote and Python>",
             demo_only, ("run", "stuck-pipeline", "--timeout", "20", "-p", f"approve={PAYLOAD}"),
             statuses(Status.WARNING), bound(20)),
    Scenario("inject-profile-description", "markup and templates as the profile's description",
             described_profile, ("run", DESCRIBED, "--timeout", "20"), statuses(Status.WARNING), bound(20)),
]  # fmt: skip


@pytest.mark.parametrize("scenario", SCENARIOS, ids=str)
def test_injected_markup_reaches_the_report_escaped_and_inert(
    scenario: Scenario, workspace: Workspace
) -> None:
    with scenario.setup(workspace) as profile:
        database = workspace.data / "demo" / "pipeline.db"
        before = sqlite_digest(database)
        ran = run_opslib(
            workspace.env,
            workspace.root,
            *scenario.command,
            "--profile",
            profile,
            kill_after_s=2 * scenario.bound_s,
        )
    assert_within(scenario.name, ran.elapsed_s, scenario.bound_s)
    assert Status(ran.returncode) in scenario.expected, ran.output
    assert_clean_archive(workspace.reports, ran.stdout, ran.stderr)
    assert sqlite_digest(database) == before
    pages = sorted(workspace.reports.rglob("*.html"))
    report = next(page for page in pages if page.name != "index.html")
    assert b"&lt;script&gt;alert(" in report.read_bytes(), "the payload never reached the report"
    for page in pages:
        html = page.read_bytes()
        assert not [live for live in LIVE if live in html], f"{page.name} renders the payload"
    assert not list(Path(workspace.root).rglob(PWNED)), "a parameter ran as code"
    assert not (workspace.home / PWNED).exists()
