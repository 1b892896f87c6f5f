"""Secrets stay secret: no database password on a child process's command line, none in
the archive, the ledger or the output, whether it sits in a DSN's userinfo, in its
`?password=` query parameter, or appears on its own in a log line."""

from __future__ import annotations

import secrets
import threading
import time
from pathlib import Path

import pytest
from postgres_server import PostgresServer
from support import Workspace

from opslib.actions.pg_dump import libpq_target
from opslib.clock import utc_now
from opslib.demo.common import python_log_line
from opslib.errors import BackupError
from opslib.profiles import load_profile
from opslib.profiles.secrets import mask_url, scrub

DIGITS_AS_LETTERS = str.maketrans("0123456789", "ghijklmnop")


def canary(kind: str) -> str:
    """A password no test output could contain by chance (no digits a log pattern folds)."""
    return f"Canary{kind}{secrets.token_hex(4).translate(DIGITS_AS_LETTERS)}"


def with_password(url: str, password: str) -> str:
    """The test server's URL (`postgresql://postgres@/db?host=...`) carrying a password."""
    return url.replace("postgres@", f"postgres:{password}@", 1)


def leaks(workspace: Workspace, secret: str, *outputs: str) -> list[str]:
    """Where `secret` shows: in the given outputs, or in any file under the archive
    (reports, notebooks, the ledger's SQLite file)."""
    found = [f"output {index}" for index, text in enumerate(outputs) if secret in text]
    if workspace.reports.exists():
        found += [
            str(path)
            for path in workspace.reports.rglob("*")
            if path.is_file() and secret.encode() in path.read_bytes()
        ]
    return found


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+psycopg://ops:{pw}@db.internal:5432/pipeline?sslmode=require",
        "postgresql://ops@db.internal:5432/pipeline?password={pw}&sslmode=require",
    ],
)
def test_the_libpq_uri_for_pg_dump_carries_no_password(url: str) -> None:
    password = canary("Dump")
    uri, environment = libpq_target(url.format(pw=password), "restored")
    assert password not in uri
    assert uri == "postgresql://ops@db.internal:5432/restored?sslmode=require"
    assert environment["PGPASSWORD"] == password


def test_a_secret_libpq_has_no_environment_for_is_refused_not_put_on_the_command_line() -> None:
    with pytest.raises(BackupError, match="sslpassword would go on the client tools' command"):
        libpq_target(f"postgresql://ops@db/pipeline?sslpassword={canary('Key')}")


def test_no_password_on_pg_dumps_command_line_during_a_nightly_backup(
    workspace: Workspace, server: PostgresServer, video: dict[str, int]
) -> None:
    """`ps` shows every user each process's command line: sampled while pg_dump runs."""
    engine = server.engine("video")
    with engine.begin() as connection:  # enough rows for the dump to take about a second
        connection.exec_driver_sql(
            "CREATE TABLE ballast AS SELECT g, md5(g::text) AS h FROM generate_series(1, 600000) g"
        )
    engine.dispose()
    password = canary("Nightly")
    workspace.env["VIDEO_DSN"] = with_password(server.url("video"), password)
    workspace.env["VIDEO_BACKUP_DIR"] = str(workspace.root / "backups")
    seen: list[str] = []
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
                try:
                    argv = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
                except OSError:
                    continue
                if "pg_dump" in argv and "--format=custom" in argv:
                    seen.append(argv)
            time.sleep(0.005)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        run = workspace.opslib("run", "backup", "--profile", "video", "-p", "apply=true")
    finally:
        done.set()
        sampler.join()
    assert "applied plan" in run.stdout, run.stdout + run.stderr
    assert seen, "pg_dump was never caught running: the sample proves nothing"
    assert [argv for argv in seen if password in argv] == []
    assert leaks(workspace, password, run.stdout, run.stderr) == []


def _seed_ideas(workspace: Workspace, server: PostgresServer, dsn: str) -> None:
    server.fresh_database("ideas_secrets")
    workspace.env["IDEAS_DSN"] = dsn
    seeded = workspace.opslib("demo", "ideas")
    assert seeded.returncode == 0, seeded.stdout + seeded.stderr


def test_a_query_parameter_password_never_reaches_the_ledger(
    workspace: Workspace, server: PostgresServer
) -> None:
    password = canary("Query")
    _seed_ideas(workspace, server, server.url("ideas_secrets") + f"&password={password}")
    run = workspace.opslib("run", "emergency-halt", "--profile", "ideas", "-p", "apply=true")
    assert "applied plan" in run.stdout, run.stdout + run.stderr
    assert leaks(workspace, password, run.stdout, run.stderr) == []
    assert any(path.suffix == ".sqlite" for path in workspace.reports.rglob("*"))


def test_a_password_logged_on_its_own_is_masked(
    workspace: Workspace, server: PostgresServer
) -> None:
    password = canary("Alone")
    _seed_ideas(workspace, server, with_password(server.url("ideas_secrets"), password))
    with (workspace.data / "ideas" / "logs" / "pipeline.log").open("a") as log:
        message = f"authentication failed, the worker tried {password} again"
        log.write(python_log_line(utc_now(), "pipeline.research", "ERROR", message))
    run = workspace.opslib("run", "high-error-rate", "--profile", "ideas")
    assert leaks(workspace, password, run.stdout, run.stderr) == []
    (report,) = [path for path in workspace.archive_files() if path.suffix == ".html"]
    assert "authentication failed, the worker tried *** again" in report.read_text()


def test_each_secret_part_of_a_url_is_masked_on_its_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    userinfo, query, token = canary("User"), canary("Ssl"), canary("Token")
    monkeypatch.setenv(
        "OPSLIB_TEST_LINK",
        f"postgresql://ops:{userinfo}@db/x?sslpassword={query}&access_token={token}&sslmode=on",
    )
    profile = tmp_path / "p.yaml"
    profile.write_text("name: p\ntargets:\n  database:\n    url: ${OPSLIB_TEST_LINK}\n")
    load_profile(str(profile)).resolve_all()
    assert scrub(f"{userinfo} and {query}, {token}") == "*** and ***, ***"


def test_mask_url_masks_secret_query_parameters() -> None:
    assert (
        mask_url("postgresql://u@h/db?sslmode=require&password=p4ss&api_key=k3y")
        == "postgresql://u@h/db?sslmode=require&password=***&api_key=***"
    )
    assert mask_url("https://h/hook?access_token=abc#top") == "https://h/hook?access_token=***#top"
    assert mask_url("see ?page=2&sort=name") == "see ?page=2&sort=name"


def test_a_one_or_two_letter_password_is_not_masked_inside_every_word(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It protects nothing, and masking it would turn every `p` of a report into ***."""
    monkeypatch.setenv("OPSLIB_TEST_SHORT", "postgresql://ops:p@db/x")
    profile = tmp_path / "p.yaml"
    profile.write_text("name: p\ntargets:\n  database:\n    url: ${OPSLIB_TEST_SHORT}\n")
    load_profile(str(profile)).resolve_all()
    assert scrub("pipeline stopped") == "pipeline stopped"
    assert scrub("postgresql://ops:p@db/x") == "***"
