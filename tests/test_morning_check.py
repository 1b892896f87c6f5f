"""The morning check end to end on the demo: real notebook, real kernel, real archive."""

from __future__ import annotations

import html
import re
import secrets
import sqlite3
from urllib.parse import quote

import nbformat
import scrapbook
from support import Workspace


def report_path(result_stdout: str, workspace: Workspace):  # type: ignore[no-untyped-def]
    shown = re.search(r"^report: (.+\.html)$", result_stdout, re.M).group(1)
    path = workspace.root / shown
    return path if path.exists() else workspace.reports.parent / shown


def test_fresh_demo_ends_warning_with_stuck_jobs_and_error_rate(workspace: Workspace) -> None:
    result = workspace.opslib("run", "morning-check")
    assert result.returncode == 1, result.stderr
    assert result.stdout.startswith("WARNING morning-check on demo")
    assert "stuck_jobs" in result.stdout and "log_error_rate" in result.stdout
    assert result.stderr == ""


def test_report_shows_banner_check_table_and_chart_but_no_code(workspace: Workspace) -> None:
    result = workspace.opslib("run", "morning-check")
    html_files = [p for p in workspace.archive_files() if p.suffix == ".html"]
    assert len(html_files) == 1
    html = html_files[0].read_text()
    assert re.search(r'class="opslib-banner opslib-WARNING"', html)
    assert "WARNING — morning-check on demo" in html
    assert 'class="dataframe opslib-checks"' in html
    assert html.count("<img") >= 1 and "data:image/png;base64" in html
    # no code cell (the process table may quote anyone's command line, so look for the cell)
    assert 'class="jp-CodeMirrorEditor' not in html and '<div class="highlight' not in html
    assert "application/scrapbook" not in html
    assert "cdnjs" not in html and "<script src=" not in html
    assert html_files[0].parent.relative_to(workspace.reports).parts[0].isdigit()
    assert re.fullmatch(r"morning-check--demo--\d{6}\.html", html_files[0].name)
    assert result.returncode == 1


def test_archived_notebook_carries_results_scrapbook_can_read(workspace: Workspace) -> None:
    workspace.opslib("run", "morning-check")
    (notebook,) = [p for p in workspace.archive_files() if p.suffix == ".ipynb"]
    scraps = scrapbook.read_notebook(str(notebook)).scraps
    names = {record["name"]: record["status"] for record in scraps["opslib_results"].data}
    assert names["stuck_jobs"] == "WARNING" and names["database_integrity"] == "OK"
    assert nbformat.read(notebook, as_version=4).cells[0].cell_type == "markdown"


def test_ledger_history_and_index_record_the_run(workspace: Workspace) -> None:
    workspace.opslib("run", "morning-check")
    history = workspace.opslib("history", "--runbook", "morning-check")
    assert history.returncode == 0
    assert "WARNING" in history.stdout and "morning-check" in history.stdout
    index = (workspace.reports / "index.html").read_text()
    assert "morning-check" in index and "WARNING" in index
    with sqlite3.connect(workspace.reports / "ledger.sqlite") as ledger:
        checks = dict(ledger.execute("SELECT name, status FROM check_results"))
        (user, exit_code) = ledger.execute("SELECT os_user, exit_code FROM runs").fetchone()
    assert checks["stuck_jobs"] == "WARNING" and exit_code == 1 and user


def test_corrupted_database_is_critical(workspace: Workspace) -> None:
    database = workspace.data / "demo" / "pipeline.db"
    content = bytearray(database.read_bytes())
    content[4096 : 4096 * 3] = b"\xde\xad\xbe\xef" * 2048
    database.write_bytes(bytes(content))
    result = workspace.opslib("run", "morning-check")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "CRITICAL" in result.stdout and "database" in result.stdout


def test_missing_database_is_critical_not_created(workspace: Workspace) -> None:
    database = workspace.data / "demo" / "pipeline.db"
    database.unlink()
    result = workspace.opslib("run", "morning-check")
    assert result.returncode == 2
    assert "CRITICAL database_reachable" in " ".join(result.stdout.split())
    assert not database.exists(), "a read-only probe must never create the database"


def test_secret_in_profile_never_reaches_the_archive(workspace: Workspace) -> None:
    canary = f"canary-{secrets.token_hex(12)}"
    workspace.env["OPSLIB_CANARY"] = canary
    profile = workspace.root / "canary.yaml"
    demo = (workspace.home / "parameters" / "profiles" / "demo.yaml").read_text()
    profile.write_text(
        demo.replace("name: demo", "name: canary").replace(
            "disks:\n", "disks:\n    secretly: /tmp/${OPSLIB_CANARY}\n"
        )
    )
    result = workspace.opslib("run", "morning-check", "--profile", str(profile))
    assert result.returncode in (1, 2), result.stderr
    assert canary not in result.stdout + result.stderr
    leaks = [
        p for p in workspace.reports.rglob("*") if p.is_file() and canary.encode() in p.read_bytes()
    ]
    assert leaks == []
    assert any(p.suffix == ".html" for p in workspace.archive_files())


def test_database_password_never_reaches_the_archive_in_any_form(workspace: Workspace) -> None:
    password = f"Tom&Jerry<{secrets.token_hex(6)}>@x/y"
    workspace.env["OPSLIB_TEST_PGPW"] = password
    profile = workspace.root / "pg.yaml"
    profile.write_text(
        "name: pg\ntargets:\n  database:\n"
        "    url: postgresql://ops:${OPSLIB_TEST_PGPW}@127.0.0.1:1/pipeline\n"
        "    connect_timeout: 2 s\n"
        "queue: {table: jobs}\n"
    )
    result = workspace.opslib(
        "run", "morning-check", "--profile", str(profile), "--by", "<b>eve</b>"
    )
    assert result.returncode == 2, result.stdout + result.stderr
    forms = {
        password,
        html.escape(password),
        html.escape(password, quote=False),
        quote(password, safe=""),
    }
    fragments = {"Tom&Jerry", "Jerry<", password.split("@")[1]}
    everything = result.stdout + result.stderr
    for path in workspace.reports.rglob("*"):
        if path.is_file():
            everything += path.read_bytes().decode(errors="replace")
    assert [form for form in forms | fragments if form in everything] == []
    (page,) = [p for p in workspace.archive_files() if p.suffix == ".html"]
    assert "<b>eve</b>" not in page.read_text() and "&lt;b&gt;eve&lt;/b&gt;" in page.read_text()
