"""Secrets stay secret: no database password on a child process's command line, none in
the archive, the ledger or the output, whether it sits in a DSN's userinfo, in its
`?password=` query parameter, or appears on its own in a log line."""

from __future__ import annotations

import base64
import html
import json
import secrets
import socket
import threading
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from postgres_server import PostgresServer
from psycopg.conninfo import conninfo_to_dict
from support import Workspace

from opslib.actions import Applied, Plan, execute
from opslib.actions.pg_dump import libpq_target
from opslib.clock import utc_now
from opslib.context import RunContext
from opslib.demo.common import python_log_line
from opslib.errors import BackupError
from opslib.profiles import load_profile
from opslib.profiles.secrets import (
    mask_url,
    redact_parameters,
    register_url_secrets,
    scrub,
    scrub_values,
)

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


def test_a_repeated_password_parameter_gives_pg_dump_the_one_libpq_would_use() -> None:
    """libpq keeps the last of a repeated keyword (and a `?password=` over the userinfo's);
    PGPASSWORD once read "('qp', 'qp2')"."""
    url = "postgresql://ops:userinfo@db/x?password=first&password=Canary-last"
    uri, environment = libpq_target(url)
    assert environment["PGPASSWORD"] == conninfo_to_dict(url)["password"] == "Canary-last"
    assert "Canary" not in uri and "first" not in uri


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


def test_a_password_holding_at_signs_is_masked_up_to_the_last_one_before_the_host() -> None:
    """redis-py reads `redis://:p@ssw0rd@host` as password `p@ssw0rd` (the last `@`)."""
    url = "redis://:p@ssw0rd-Canary@host:6379/0"
    assert mask_url(url) == "redis://:***@host:6379/0"
    register_url_secrets(url)
    assert scrub("AUTH p@ssw0rd-Canary failed") == "AUTH *** failed"
    # the authority ends at the first '/', '?' or '#': an '@' after it is no password's
    assert mask_url("http://localhost:8888/lab/tree/x@y") == "http://localhost:8888/lab/tree/x@y"
    assert mask_url("https://grafana:3000/d?var=a@b.com") == "https://grafana:3000/d?var=a@b.com"


def test_only_an_ampersand_ends_a_secret_query_value() -> None:
    assert (
        mask_url("postgresql://u@h/db?password=ab;cdef&sslmode=require")
        == "postgresql://u@h/db?password=***&sslmode=require"
    )
    assert (
        mask_url("<a href='https://h/x?a=1&amp;token=ab;cd&amp;b=2'>")
        == "<a href='https://h/x?a=1&amp;token=***&amp;b=2'>"
    )


@pytest.mark.parametrize("name", ["pwd", "auth", "dsn", "sslpassword", "api_key"])
def test_every_secret_looking_name_is_masked_in_a_query_and_in_parameters(name: str) -> None:
    assert mask_url(f"https://h/x?{name}=Canary12&page=2") == f"https://h/x?{name}=***&page=2"
    assert redact_parameters({name: "Canary12"}) == {name: "***"}


def test_a_short_url_password_garbles_no_word_and_no_image_of_a_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`postgresql://app:dev@h` made every `development` `***elopment` and rewrote the
    base64 charts of the report; the URL itself is still masked."""
    monkeypatch.setenv("OPSLIB_TEST_SHORT_URL", "postgresql://app:dev@db.internal/x")
    profile = tmp_path / "p.yaml"
    profile.write_text("name: p\ntargets:\n  database:\n    url: ${OPSLIB_TEST_SHORT_URL}\n")
    load_profile(str(profile)).resolve_all()
    chart = base64.b64encode(b"\x89PNG\r\n" + bytes(range(256)) * 4).decode() + "devA"
    report = f'<p>development</p><img src="data:image/png;base64,{chart}">'
    assert scrub(report) == report
    assert scrub("see postgresql://app:dev@other/x") == "see postgresql://app:***@other/x"


def test_the_audit_row_is_scrubbed_inside_tuples_and_sets() -> None:
    password = canary("Tuple")
    register_url_secrets(f"postgresql://ops:{password}@db/x")

    @dataclass
    class Rewrite:
        name: str = "rewrite"
        needs: str = ""
        profile: None = None

        def plan(self) -> Plan:
            return Plan(self.name, "db", "rewrite one row", ({"row": 1},))

        def apply(self, plan: Plan) -> Applied:
            before = {"values": (1, f"dsn {password}"), "seen": {password}}
            return Applied(1, 1, 0, [{"args": (password,)}], [], before)

    class Log:
        closed: dict[str, Any] = {}

        def open_audit(self, entry: dict[str, Any]) -> int:
            return 1

        def close_audit(self, audit_id: int, outcome: str, **facts: Any) -> None:
            Log.closed = facts

    context = RunContext.current("test", "p")
    assert execute(Rewrite(), context, Log, apply=True).mode == "applied"
    assert password not in repr(Log.closed)
    assert Log.closed["changes"] == [{"args": ("***",)}]
    assert Log.closed["backup"] == {"values": (1, "dsn ***"), "seen": {"***"}}


def test_a_secret_json_escaped_in_a_notebook_is_masked() -> None:
    password = canary("Json") + '"\\é'
    register_url_secrets(f"redis://:{urllib.parse.quote(password)}@host:6379/0")
    for text in (json.dumps(password), json.dumps(password, ensure_ascii=False)):
        assert scrub(f'{{"url": {text}}}') == '{"url": "***"}'


HARD_CHARACTERS = '@%:;"\\é'


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def every_form(secret: str) -> set[str]:
    """The ways a report, a notebook or a URL can write `secret`."""
    return {
        secret,
        html.escape(secret),
        html.escape(secret, quote=False),
        urllib.parse.quote(secret, safe=""),
        urllib.parse.quote_plus(secret, safe=""),
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
    }


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://ops:${OPSLIB_TEST_PG_PASSWORD}@127.0.0.1:{port}/pipeline",
        "${OPSLIB_TEST_PG_URL}",
    ],
)
def test_a_password_with_every_hard_character_leaves_no_trace_of_a_failed_run(
    workspace: Workspace, url: str
) -> None:
    password = canary("Hard") + HARD_CHARACTERS
    port = closed_port()
    workspace.env["OPSLIB_TEST_PG_PASSWORD"] = password
    workspace.env["OPSLIB_TEST_PG_URL"] = (
        f"postgresql://ops:{urllib.parse.quote(password, safe='')}@127.0.0.1:{port}/pipeline"
    )
    profile = workspace.root / "hard.yaml"
    profile.write_text(
        "name: hard\ntargets:\n  database:\n"
        f"    url: {url.replace('{port}', str(port))}\n    connect_timeout: 2 s\n"
    )
    run = workspace.opslib("run", "morning-check", "--profile", str(profile))
    assert run.returncode == 2, run.stdout + run.stderr
    assert workspace.archive_files(), "a failed run is archived too: the files were checked"
    assert [
        where
        for form in every_form(password)
        for where in leaks(workspace, form, run.stdout, run.stderr)
    ] == []


def test_a_short_secret_named_variable_leaves_the_report_charts_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A variable named like a secret is masked however short (`REDIS_PASSWORD=abc`), but
    never inside an inlined image, where it would break the chart and hides nothing."""
    monkeypatch.setenv("OPSLIB_TEST_SHORT_PASSWORD", "abc")
    profile = tmp_path / "p.yaml"
    profile.write_text(
        "name: p\ntargets:\n  redis:\n    url: redis://:${OPSLIB_TEST_SHORT_PASSWORD}@h:6379/0\n"
    )
    load_profile(str(profile)).resolve_all()
    chart = base64.b64encode(b"\x89PN" + b"i\xb7\x1d" * 300).decode()  # "iVBO" + "abcd"s
    assert "abc" in chart
    page = f'<p>abc</p><img src="data:image/png;base64,{chart}">'
    assert scrub(page) == f'<p>***</p><img src="data:image/png;base64,{chart}">'
    output = {"data": {"image/png": chart, "text/plain": "abc"}}
    assert scrub_values(output) == {"data": {"image/png": chart, "text/plain": "***"}}
