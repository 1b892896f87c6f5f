"""The catalog pipeline's demo and its log runbooks, run as cron would run them."""

from __future__ import annotations

import html

import pytest
from conftest import Workspace


@pytest.fixture
def catalog(workspace: Workspace) -> Workspace:
    created = workspace.opslib("demo", "catalog")
    assert created.returncode == 0, created.stdout + created.stderr
    return workspace


def test_high_error_rate_on_the_demo_is_critical_and_lists_the_top_patterns(
    catalog: Workspace,
) -> None:
    result = catalog.opslib("run", "high-error-rate", "--profile", "catalog")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "CRITICAL log_error_rate" in " ".join(result.stdout.split())
    (report,) = catalog.reports.rglob("*high-error-rate*.html")
    text = html.unescape(report.read_text())
    for pattern in (
        "fetch fragrance <n> failed: timeout after <n> s",
        "fetch fragrance <n> failed: HTTP <n> rate limit exceeded, retry in <n> s",
        'import of fragrance <n> failed: duplicate key value violates unique constraint "fragrances_slug_key"',
    ):
        assert pattern in text
    assert "Errors per hour" in text


def test_morning_check_on_a_profile_without_a_database_skips_what_it_lacks(
    catalog: Workspace,
) -> None:
    result = catalog.opslib("run", "morning-check", "--profile", "catalog")
    assert result.returncode == 1, result.stdout + result.stderr  # 3.9 % over 24 h: WARNING
    (report,) = catalog.reports.rglob("*morning-check*.html")
    text = report.read_text()
    assert "database_reachable skipped" in text and "gpu_memory skipped" in text
    assert "log_error_patterns" in text
