"""`opslib archive scan` finds an inherited archive's secrets (never printing them) and its
files others can read; an archive opslib wrote itself comes out clean."""

from __future__ import annotations

import html
import sqlite3
import urllib.parse

from support import Workspace

PASSWORD = "Canary&Pass/word42"
PROFILE = """\
name: scanned
description: a profile whose database password comes from the environment
targets:
  database:
    url: postgresql://ops:${SCAN_DB_PASSWORD}@localhost:1/pipeline
"""


def test_scan_names_each_file_holding_a_secret_and_never_the_secret(
    workspace: Workspace,
) -> None:
    profile = workspace.root / "scanned.yaml"
    profile.write_text(PROFILE)
    workspace.env["SCAN_DB_PASSWORD"] = PASSWORD
    archive = workspace.reports
    old = archive / "2025" / "01" / "02"
    old.mkdir(parents=True)
    (old / "plain.html").write_text(f"<p>connecting with {html.escape(PASSWORD)} twice: "
                                    f"{html.escape(PASSWORD)}</p>")  # fmt: skip
    (old / "encoded.ipynb").write_text(f'"url": "{urllib.parse.quote(PASSWORD, safe="")}"')
    (old / "other.log").write_text("postgresql://someone:hunter2hunter2@db.internal/x\n")
    (old / "masked.html").write_text("postgresql://ops:***@localhost:1/pipeline")
    with sqlite3.connect(archive / "ledger.sqlite") as ledger:
        ledger.execute("CREATE TABLE audit (target TEXT)")
        ledger.execute("INSERT INTO audit VALUES (?)", (f"x{PASSWORD}y",))
    for path in [archive, *archive.rglob("*")]:
        path.chmod(0o700 if path.is_dir() else 0o600)
    (old / "masked.html").chmod(0o644)

    result = workspace.opslib("archive", "scan", "--profile", str(profile))
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    key = "profile scanned: targets.database.url"
    assert f"2025/01/02/plain.html: 2 x {key}" in result.stdout
    assert f"2025/01/02/encoded.ipynb: 1 x {key}" in result.stdout
    assert "2025/01/02/other.log: 1 x a URL password" in result.stdout
    assert f"ledger.sqlite: 1 x {key}" in result.stdout
    assert not any("masked.html: " in line and " x " in line for line in lines)
    assert "2025/01/02/masked.html: readable by others (0o644)" in result.stdout
    assert lines[-1].endswith("4 file(s) hold one, 1 readable by others")
    assert PASSWORD not in result.stdout + result.stderr and "hunter2" not in result.stdout


def test_an_archive_opslib_wrote_is_clean(workspace: Workspace) -> None:
    assert workspace.opslib("run", "morning-check").returncode == 1
    result = workspace.opslib("archive", "scan")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[-1].endswith("0 file(s) hold one, 0 readable by others")
