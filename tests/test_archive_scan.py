"""`opslib archive scan` finds an inherited archive's secrets (never printing them) and its
files others can read; an archive opslib wrote itself comes out clean."""

from __future__ import annotations

import gzip
import html
import io
import json
import sqlite3
import tarfile
import urllib.parse
from pathlib import Path

import pytest
from support import Workspace

from opslib.archive import scan as archive_scan
from opslib.archive.scan import Unread, load_profiles, scan, secrets_by_key

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


HARD = 'Canary"Hard\\wörd42'


def tar_gz(path: Path, members: dict[str, bytes]) -> None:
    with tarfile.open(path, "w:gz") as package:
        for name, data in members.items():
            member = tarfile.TarInfo(name)
            member.size = len(data)
            package.addfile(member, io.BytesIO(data))


def scanned_profile(workspace: Workspace, url: str) -> Path:
    profile = workspace.root / "scanned.yaml"
    profile.write_text(
        PROFILE.replace("postgresql://ops:${SCAN_DB_PASSWORD}@localhost:1/pipeline", url)
    )
    return profile


def test_scan_opens_gzipped_files_and_diagnostic_packages(workspace: Workspace) -> None:
    """A gzipped notebook or a package member was read as compressed bytes: never a hit."""
    profile = scanned_profile(workspace, "postgresql://ops:${SCAN_DB_PASSWORD}@localhost:1/x")
    workspace.env["SCAN_DB_PASSWORD"] = PASSWORD
    old = workspace.reports / "2025" / "01"
    old.mkdir(parents=True)
    (old / "run.ipynb.gz").write_bytes(gzip.compress(f"tried {PASSWORD}".encode()))
    (workspace.reports / "diagnostics").mkdir()
    inner_log = gzip.compress(f"again {PASSWORD}".encode())
    tar_gz(
        workspace.reports / "diagnostics" / "demo-1.tar.gz",
        {"logs/app.log": f"with {PASSWORD}".encode(), "logs/old.log.gz": inner_log,
         "clean.txt": b"nothing here"},
    )  # fmt: skip
    result = workspace.opslib("archive", "scan", "--profile", str(profile))
    key = "profile scanned: targets.database.url"
    assert f"2025/01/run.ipynb.gz: 1 x {key}" in result.stdout, result.stdout + result.stderr
    assert f"diagnostics/demo-1.tar.gz:logs/app.log: 1 x {key}" in result.stdout
    assert f"diagnostics/demo-1.tar.gz:logs/old.log.gz: 1 x {key}" in result.stdout
    assert "clean.txt" not in result.stdout and result.returncode == 2


def test_scan_finds_json_escaped_secrets_and_literal_profile_passwords(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A notebook writes `"` and `\\` escaped and a non-ASCII letter as \\uXXXX; and a
    password written in the profile itself (no ${VAR}) is a secret too."""
    monkeypatch.setenv("SCAN_DB_PASSWORD", HARD)
    literal = "LiteralCanary77"
    profile = workspace.root / "scanned.yaml"
    profile.write_text(PROFILE + f"  redis:\n    url: redis://:{literal}@localhost:1/0\n")
    secrets, unresolved = secrets_by_key(load_profiles([str(profile)])[0])
    assert unresolved == []
    root = workspace.reports
    root.mkdir()
    (root / "a.ipynb").write_text(json.dumps({"text": f"x {HARD} y"}))
    (root / "b.ipynb").write_text(json.dumps({"text": f"x {HARD} y"}, ensure_ascii=False))
    (root / "c.log").write_text(f"AUTH {literal} refused")
    found = {(finding.path.name, finding.what) for finding in scan(root, secrets)}
    assert found == {
        ("a.ipynb", "profile scanned: targets.database.url"),
        ("b.ipynb", "profile scanned: targets.database.url"),
        ("c.log", "profile scanned: targets.redis.url"),
    }


def test_scan_reports_clear_query_passwords_and_not_what_only_looks_like_one(
    tmp_path: Path,
) -> None:
    (tmp_path / "old.html").write_text(
        "postgresql://ops@db/x?sslmode=require&password=hunter2hunter2\n"
        "https://h/hook?a=1&amp;access_token=tok123456#top\n"
    )
    (tmp_path / "fine.html").write_text(
        "http://localhost:8888/lab/tree/x@y https://grafana:3000/d?var=a@b.com\n"
        "postgresql://u:%2A%2A%2A@db/x postgresql://u:&#42;&#42;&#42;@db/x\n"
        "postgresql://u@db/x?password=***&amp;token=%2A%2A%2A ?page=2&sort=name\n"
    )
    found = {(finding.path.name, finding.what, finding.count) for finding in scan(tmp_path, {})}
    assert found == {("old.html", "a URL's secret parameter", 2)}


def test_a_profile_that_does_not_load_or_resolve_is_a_line_not_the_end_of_the_scan(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SCAN_DB_PASSWORD", PASSWORD)
    good = workspace.root / "scanned.yaml"
    good.write_text(PROFILE)
    broken = workspace.root / "broken.yaml"
    broken.write_text("name: broken\ntargets: [\n")
    badport = workspace.root / "badport.yaml"
    badport.write_text("name: badport\ntargets:\n  redis:\n    url: redis://h:63x9/0\n")
    profiles, problems = load_profiles([str(good), str(broken), "/nonexistent/p.yaml"])
    assert [profile.name for profile in profiles] == ["scanned"]
    assert len(problems) == 2 and "broken.yaml" in problems[0] and "/nonexistent" in problems[1]
    secrets, unresolved = secrets_by_key([*profiles, *load_profiles([str(badport)])[0]])
    assert PASSWORD in secrets
    assert [line for line in unresolved if "targets.redis.url" in line] == [
        line for line in unresolved
    ] and len(unresolved) == 1


def test_a_file_that_cannot_be_read_or_vanishes_is_a_line_not_the_end_of_the_scan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "a.log").write_text("hunter: postgresql://u:hunter2hunter2@db/x")
    (tmp_path / "broken.gz").write_bytes(b"not gzip at all")
    (tmp_path / "cut.tar.gz").write_bytes(gzip.compress(b"x" * 1000)[:30])
    listed = archive_scan.archive_files

    def listing_with_a_file_gone(root: Path, unread: list[Unread]) -> list[Path]:
        return [*listed(root, unread), root / "gone.log"]

    monkeypatch.setattr(archive_scan, "archive_files", listing_with_a_file_gone)
    unread: list[Unread] = []
    findings = scan(tmp_path, {}, unread)
    assert [(finding.path.name, finding.count) for finding in findings] == [("a.log", 1)]
    damaged = "damaged, or not the gzip or tar file its name says"
    assert [(problem.path.name, problem.reason) for problem in unread] == [
        ("broken.gz", damaged), ("cut.tar.gz", damaged), ("gone.log", "no such file or directory")
    ]  # fmt: skip


def test_what_the_scan_could_not_read_is_said_and_makes_it_unknown(
    workspace: Workspace,
) -> None:
    archive = workspace.reports
    archive.mkdir(parents=True)
    archive.chmod(0o700)
    broken = archive / "old.html.gz"
    broken.write_bytes(b"\x1f\x8b\x08\x00 this gzip stream is cut short")
    broken.chmod(0o600)
    bad_profile = workspace.root / "bad.yaml"
    bad_profile.write_text("name: bad\ntargets: [not, a, mapping]\n")
    result = workspace.opslib("archive", "scan", "--profile", str(bad_profile))
    assert result.returncode == 3, result.stdout + result.stderr
    assert any(line.startswith("not looked for: ") for line in result.stdout.splitlines())
    assert "old.html.gz: not scanned (" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr
