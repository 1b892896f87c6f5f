"""Notifications: sent on a change of state and on recovery, through a real SMTP server
and a real HTTP receiver; silenced by acks; delivered late rather than lost."""

from __future__ import annotations

import socket
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from support import Workspace


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Inbox:
    """An aiosmtpd handler keeping every message it accepts."""

    def __init__(self) -> None:
        self.messages: list[str] = []

    async def handle_DATA(self, server, session, envelope) -> str:  # type: ignore[no-untyped-def]  # aiosmtpd calls it by this name
        self.messages.append(envelope.content.decode("utf-8", "replace"))
        return "250 OK"


class Mailer:
    def __init__(self, port: int) -> None:
        self.port = port
        self.inbox = Inbox()
        self.controller: Controller | None = None

    def start(self) -> None:
        self.controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    def subjects(self) -> list[str]:
        return [
            line.removeprefix("Subject: ")
            for message in self.inbox.messages
            for line in message.splitlines()
            if line.startswith("Subject: ")
        ]


@pytest.fixture
def mailer() -> Iterator[Mailer]:
    server = Mailer(_free_port())
    server.start()
    yield server
    server.stop()


def _setup(workspace: Workspace, mailer: Mailer, receiver: list[dict], hard_after: int = 1) -> Path:
    """A profile on the demo with mail and webhook channels, and a runbook checking only
    the demo's stuck jobs (WARNING until they are fixed)."""
    workspace.env["TEST_SMTP_PASSWORD"] = "hunter22-secret"
    workspace.env["TEST_HOOK_URL"] = receiver[0]["url"]
    base = (workspace.home / "parameters" / "profiles" / "demo.yaml").read_text()
    profile = workspace.root / "alerting.yaml"
    profile.write_text(
        base.replace("name: demo", "name: alerting")
        + f"""
notify:
  hard_after: {hard_after}
  channels:
    mail:
      smtp:
        host: 127.0.0.1
        port: {mailer.port}
        sender: opslib@example.com
        to: [oncall@example.com]
        timeout: 3 s
    chat:
      webhook:
        url: ${{TEST_HOOK_URL}}
"""
    )
    workspace.add_runbook(
        "stuck-only",
        "from opslib.runbook import Runbook\nrb = Runbook.open('stuck-only', profile)",
        "rb.evaluate('stuck_jobs')",
        "rb.finish()",
    )
    return profile


def _run(workspace: Workspace, profile: Path) -> str:
    result = workspace.opslib("run", "stuck-only", "--profile", str(profile))
    assert result.returncode in (0, 1), result.stdout + result.stderr
    return result.stdout


def _fix_the_stuck_jobs(workspace: Workspace) -> None:
    with sqlite3.connect(workspace.data / "demo" / "pipeline.db") as connection:
        connection.execute(
            "UPDATE jobs SET status = 'completed', finished_at = started_at WHERE status = 'processing'"
        )
    connection.close()


def test_a_change_is_sent_once_and_a_recovery_once(
    workspace: Workspace, mailer: Mailer, receiver: list[dict]
) -> None:
    profile = _setup(workspace, mailer, receiver)
    _run(workspace, profile)
    _run(workspace, profile)
    assert mailer.subjects() == ["[opslib] WARNING stuck-only on alerting: 1 change(s)"]
    assert len(receiver) == 2 and "stuck_jobs: OK -> WARNING" in receiver[1]["text"]
    _fix_the_stuck_jobs(workspace)
    _run(workspace, profile)
    assert mailer.subjects()[1:] == ["[opslib] RECOVERED stuck-only on alerting: 1 change(s)"]
    assert "stuck_jobs: WARNING -> OK" in mailer.inbox.messages[1]
    assert "report: " in mailer.inbox.messages[1]


def test_a_state_is_hard_only_after_n_results_in_a_row(
    workspace: Workspace, mailer: Mailer, receiver: list[dict]
) -> None:
    profile = _setup(workspace, mailer, receiver, hard_after=3)
    for expected in (0, 0, 1):
        _run(workspace, profile)
        assert len(mailer.subjects()) == expected


def test_an_ack_silences_a_problem_until_it_expires_then_it_is_told_once(
    workspace: Workspace, mailer: Mailer, receiver: list[dict]
) -> None:
    profile = _setup(workspace, mailer, receiver)
    acked_at = time.monotonic()
    acked = workspace.opslib(
        "ack", "stuck-only", "stuck_jobs", "--profile", str(profile), "--until", "10 s",
        "--by", "alice", "--reason", "known, fixing the worker",
    )  # fmt: skip
    assert acked.returncode == 0, acked.stderr
    output = _run(workspace, profile)
    assert mailer.subjects() == [] and "acknowledged by alice" in output
    _run(workspace, profile)
    assert mailer.subjects() == []
    time.sleep(max(0.0, acked_at + 10.5 - time.monotonic()))  # expired, the problem still there
    _run(workspace, profile)
    _run(workspace, profile)
    assert mailer.subjects() == ["[opslib] WARNING stuck-only on alerting: 1 change(s)"]


def test_a_mail_server_that_is_down_loses_nothing(
    workspace: Workspace, mailer: Mailer, receiver: list[dict]
) -> None:
    profile = _setup(workspace, mailer, receiver)
    mailer.stop()
    output = _run(workspace, profile)
    assert "notification to mail failed (will retry next run)" in output
    assert len(list(workspace.reports.rglob("*stuck-only*.html"))) == 1
    with sqlite3.connect(workspace.reports / "ledger.sqlite") as ledger:
        assert ledger.execute(
            "SELECT outcome FROM notifications WHERE channel = 'mail'"
        ).fetchall() == [("failed",)]
    mailer.start()
    _run(workspace, profile)  # nothing new to say, but the failed message goes out
    assert mailer.subjects() == ["[opslib] WARNING stuck-only on alerting: 1 change(s) (delayed)"]
    with sqlite3.connect(workspace.reports / "ledger.sqlite") as ledger:
        assert ledger.execute(
            "SELECT outcome FROM notifications WHERE channel = 'mail'"
        ).fetchall() == [("retried",)]


def test_no_secret_travels_in_a_message(
    workspace: Workspace, mailer: Mailer, receiver: list[dict]
) -> None:
    profile = _setup(workspace, mailer, receiver)
    text = profile.read_text().replace(
        "        timeout: 3 s\n",
        "        timeout: 3 s\n        username: ops\n        password: ${TEST_SMTP_PASSWORD}\n",
        1,
    )
    profile.write_text(text)
    output = _run(workspace, profile)
    # this server offers no AUTH: the login fails, and its error must not carry the password
    assert "hunter22-secret" not in output
    assert receiver[0]["url"] not in output
    with sqlite3.connect(workspace.reports / "ledger.sqlite") as ledger:
        stored = " ".join(
            str(v) for row in ledger.execute("SELECT * FROM notifications") for v in row
        )
    assert "hunter22-secret" not in stored


def test_a_broken_channel_does_not_silence_the_others(
    workspace: Workspace, mailer: Mailer, receiver: list[dict]
) -> None:
    profile = _setup(workspace, mailer, receiver)
    webhook = "    chat:\n      webhook:\n        url: ${TEST_HOOK_URL}\n"
    profile.write_text(
        profile.read_text().replace(webhook, "    chat:\n      command: [/nonexistent/pager]\n")
    )
    output = _run(workspace, profile)
    assert "notification to chat failed" in output and "/nonexistent/pager" in output
    assert mailer.subjects() == ["[opslib] WARNING stuck-only on alerting: 1 change(s)"]


def test_a_problem_that_starts_in_a_maintenance_window_is_told_when_it_ends(
    workspace: Workspace, mailer: Mailer, receiver: list[dict]
) -> None:
    from datetime import UTC, datetime, timedelta

    profile = _setup(workspace, mailer, receiver)
    end = datetime.now(UTC) + timedelta(seconds=3)
    profile.write_text(
        profile.read_text()
        + f"  maintenance:\n    - {{start: 2026-01-01T00:00:00Z, end: '{end.isoformat()}', reason: upgrade}}\n"
    )
    output = _run(workspace, profile)
    assert mailer.subjects() == [] and "maintenance until" in output
    time.sleep(max(0.0, (end - datetime.now(UTC)).total_seconds()) + 0.5)
    _run(workspace, profile)
    assert mailer.subjects() == ["[opslib] WARNING stuck-only on alerting: 1 change(s)"]


def test_an_ack_needs_a_duration(workspace: Workspace) -> None:
    for until in ("1 GB", "0", "soon"):
        result = workspace.opslib(
            "ack", "morning-check", "--until", until, "--by", "a", "--reason", "r"
        )
        assert result.returncode == 3 and "is not a positive duration" in result.stderr
        assert "Traceback" not in result.stderr


def test_the_incident_level_is_in_the_headline_and_in_the_message(
    workspace: Workspace, mailer: Mailer, receiver: list[dict]
) -> None:
    profile = _setup(workspace, mailer, receiver)
    profile.write_text(profile.read_text() + "severity:\n  P3: ['stuck_jobs=WARNING']\n")
    output = _run(workspace, profile)
    assert "incident P3" in output.splitlines()[0]
    assert "incident P3 (respond within 4 hours" in receiver[1]["text"]


def test_a_webhook_whose_address_is_set_to_nothing_is_off_and_mail_still_goes(
    workspace: Workspace, mailer: Mailer, receiver: list[dict]
) -> None:
    profile = _setup(workspace, mailer, receiver)
    profile.write_text(profile.read_text().replace("${TEST_HOOK_URL}", "${TEST_HOOK_OFF:-}"))
    output = _run(workspace, profile)
    assert "not notified, channel chat: its address is set to nothing" in output
    assert receiver[1:] == []
    assert mailer.subjects() == ["[opslib] WARNING stuck-only on alerting: 1 change(s)"]
