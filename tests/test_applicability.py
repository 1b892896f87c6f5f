"""A runbook applies to a profile when some step of it can run there: refused in one line
when none can, and, when some cannot, those steps leave no result and no paragraph, only
their names in the report's last line."""

from __future__ import annotations

import re

import pytest
from conftest import Workspace
from test_cli_errors import assert_one_line_refusal


@pytest.mark.parametrize(
    ("runbook", "profile", "needs"),
    [
        ("gpu-memory", "demo", "gpu"),
        ("backup", "catalog", "backups"),
        ("emergency-halt", "catalog", "breaker or halt or queue"),
        ("restore", "demo", "backups"),
        ("budget-status", "demo", "breaker or budget or costs or halt"),
        ("backup", "ideas", "backups"),
    ],
)
def test_a_runbook_for_something_the_profile_lacks_is_refused(
    workspace: Workspace, runbook: str, profile: str, needs: str
) -> None:
    """Once these ran, found nothing to check and exited 0 OK."""
    workspace.env["IDEAS_DSN"] = "postgresql://ideas@127.0.0.1:1/ideas"  # never reached
    result = workspace.opslib("run", runbook, "--profile", profile)
    assert_one_line_refusal(
        result, f"{runbook} does not apply to profile {profile}", f"need {needs};", "apply:"
    )
    assert not workspace.reports.exists(), "a refused run leaves nothing in the archive"


def test_list_shows_where_each_runbook_applies_and_filters_by_profile(
    workspace: Workspace,
) -> None:
    every = workspace.opslib("list")
    assert every.returncode == 0
    blocks = dict(re.findall(r"^(\S+) .*\n.*\n\s+applies to: (.*)$", every.stdout, re.M))
    assert blocks["backup"] == "spots, video" and blocks["gpu-memory"] == "no shipped profile"
    assert "demo" in blocks["morning-check"].split(", ")
    catalog = workspace.opslib("list", "--profile", "catalog")
    names = re.findall(r"^(\S+) ", catalog.stdout, re.M)
    assert "high-error-rate" in names and "backup" not in names and "gpu-memory" not in names


def test_steps_that_do_not_apply_are_one_line_at_the_end_of_the_report(
    workspace: Workspace,
) -> None:
    result = workspace.opslib("run", "morning-check")
    (page,) = [p for p in workspace.archive_files() if p.suffix == ".html"]
    html = page.read_text()
    assert result.returncode == 1, result.stdout + result.stderr
    line = re.search(r"Not applicable to profile demo: ([^<]*)", html).group(1)
    assert "pg_connections" in line and "(no postgres)" in line and "gpu_memory" in line
    # the PostgreSQL section, all of whose steps do not apply, is gone with its explanation
    assert "Server sessions (PostgreSQL)" not in html and "<b>pg_connections</b>" not in html
    assert "1. The database answers" in html and "<b>database_reachable</b>" in html
    assert "skipped" not in html
