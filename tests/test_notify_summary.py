"""`opslib notify test` and `opslib notify summary`: a test message and a period summary
through a real SMTP server and a real HTTP receiver, a dead channel reported as failed
within its timeout, and a summary sent whether anything changed or not."""

from __future__ import annotations

import email
import email.policy
import sqlite3
import time
from datetime import timedelta
from pathlib import Path

import test_notify
from support import Workspace
from test_notify import Mailer, _free_port

from opslib.archive.ledger import Ledger, RunRecord
from opslib.checks import CheckResult
from opslib.clock import utc_now
from opslib.status import Status

mailer = test_notify.mailer  # the real SMTP server of test_notify, reused as a fixture


def _mails(server: Mailer) -> list[tuple[str, str]]:
    """(subject, body) of each message, decoded: a long subject is folded, a long line
    quoted-printable."""
    parsed = [
        email.message_from_string(text, policy=email.policy.default)
        for text in server.inbox.messages
    ]
    return [
        (str(mail["Subject"]).strip(), mail.get_content().replace("\r\n", "\n").rstrip())
        for mail in parsed
    ]


def _profile(workspace: Workspace, server: Mailer, receiver: list[dict], dead: bool) -> Path:
    """The demo profile with a mail and a webhook channel, and (`dead`) a mail channel
    whose server port nobody listens on."""
    workspace.env["TEST_HOOK_URL"] = receiver[0]["url"]
    base = (workspace.home / "parameters" / "profiles" / "demo.yaml").read_text()
    profile = workspace.root / "notified.yaml"
    channels = f"""
notify:
  summary: daily
  channels:
    mail:
      smtp: {{host: 127.0.0.1, port: {server.port}, sender: opslib@example.com, to: [ops@example.com], timeout: 3 s}}
    chat:
      webhook:
        url: ${{TEST_HOOK_URL}}
"""
    if dead:
        channels += f"""    dead:
      smtp: {{host: 127.0.0.1, port: {_free_port()}, sender: a@example.com, to: [b@example.com], timeout: 2 s}}
"""
    profile.write_text(base.replace("name: demo", "name: notified") + channels)
    return profile


def test_a_test_message_reaches_each_channel_and_a_dead_one_fails_within_its_timeout(
    workspace: Workspace, mailer: Mailer, receiver: list[dict]
) -> None:
    profile = _profile(workspace, mailer, receiver, dead=True)
    started = time.monotonic()
    result = workspace.opslib("notify", "test", "--profile", str(profile))
    assert time.monotonic() - started < 2 + 8  # the dead channel's timeout, plus start-up
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert [line.split(":")[0] for line in lines] == ["mail", "chat", "dead"]
    assert lines[0].startswith("mail: delivered") and lines[1].startswith("chat: delivered")
    assert lines[2].startswith("dead: failed after") and "ConnectionRefusedError" in lines[2]
    assert mailer.subjects() == ["[opslib] TEST message for notified via mail (no action needed)"]
    assert "test of the notification channel 'chat'" in receiver[1]["text"]
    assert not (workspace.reports / "ledger.sqlite").exists()  # no alert state touched

    only = workspace.opslib("notify", "test", "--profile", str(profile), "--channel", "chat")
    assert only.returncode == 0 and only.stdout.startswith("chat: delivered"), only.stderr
    assert len(receiver) == 3 and len(mailer.subjects()) == 1

    none = workspace.opslib("notify", "test", "--profile", "demo")
    assert none.returncode == 2 and none.stdout == ""
    assert none.stderr == "opslib: profile demo has no notification channels (notify.channels)\n"


def _seed(ledger: Ledger, profile: str) -> None:
    """Runs of the last day (and one older), a cost measure, and one applied fix."""
    now = utc_now()
    seeded = [
        ("hourly-monitor", "OK", 20, "queue moving"),
        ("hourly-monitor", "WARNING", 10, "stuck_jobs: 2 jobs processing for over 10 min"),
        ("hourly-monitor", "OK", 2, "queue moving again"),
        ("evening-wrap", "CRITICAL", 5, "backup failed: disk full"),
        ("morning-check", "OK", 50, "an older run, outside the day"),
    ]
    for number, (runbook, status, hours_ago, summary) in enumerate(seeded):
        run = RunRecord(
            f"run-{number}", runbook, profile, now - timedelta(hours=hours_ago), 1.0, status,
            int(Status[status]), summary, None, None, None, "ops", "cron", "host", {},
        )  # fmt: skip
        results = [CheckResult("budget_usage[total]", Status.OK, 40.0 + number, "%", "spent")]
        ledger.record_run(run, results if number < 3 else [])
    audit_id = ledger.open_audit(
        {
            "at": now - timedelta(hours=9),
            "os_user": "ops",
            "run_by": "alice",
            "runbook": "hourly-monitor",
            "profile": profile,
            "run_id": "run-1",
            "action": "reset-stuck-jobs",
            "plan_hash": "abc123",
            "target": "jobs",
            "summary": "2 stuck jobs back to queued",
        }  # fmt: skip
    )
    ledger.close_audit(audit_id, "applied", before_count=2, after_count=0, changes=[])


def test_a_summary_names_the_runs_worst_states_costs_and_fix_and_goes_out_unchanged(
    workspace: Workspace, mailer: Mailer, receiver: list[dict]
) -> None:
    profile = _profile(workspace, mailer, receiver, dead=False)
    _seed(Ledger(), "notified")
    for _ in range(2):  # nothing changes between the two: both are sent all the same
        result = workspace.opslib("notify", "summary", "--profile", str(profile))
        assert result.returncode == 0, result.stdout + result.stderr
    subject = "[opslib] daily summary of notified: 4 run(s), worst CRITICAL, 1 fix(es)"
    assert [mail[0] for mail in _mails(mailer)] == [subject, subject]
    body = _mails(mailer)[1][1]
    assert body == receiver[2]["text"].removeprefix(subject + "\n")
    assert "- evening-wrap: 1 run(s) (1 CRITICAL), worst CRITICAL;" in body
    assert (
        "- hourly-monitor: 3 run(s) (2 OK, 1 WARNING), worst WARNING; latest OK at "
    ) in body and "queue moving again" in body
    assert "morning-check" not in body  # 50 hours ago: not in the day
    assert "- budget_usage[total]: 42 % (OK, hourly-monitor at" in body
    assert "reset-stuck-jobs by alice in hourly-monitor: applied, 2 -> 0" in body
    with sqlite3.connect(workspace.reports / "ledger.sqlite") as ledger:
        sent = ledger.execute("SELECT channel, outcome FROM notifications ORDER BY id").fetchall()
        assert ledger.execute("SELECT count(*) FROM alert_state").fetchone() == (0,)
    assert sent == [("mail", "sent"), ("chat", "sent")] * 2


def test_a_period_without_runs_says_so(workspace: Workspace) -> None:
    from opslib.alerting.summary import build

    ledger = Ledger()
    _seed(ledger, "busy")
    for quiet in (
        build(ledger, "quiet", "weekly", utc_now()),
        build(None, "new", "daily", utc_now()),
    ):
        assert quiet.subject().endswith("summary of " + quiet.profile + ": NO runs")
        body = quiet.body()
        assert "No runbook ran on this profile in this period." in body
        assert "- none measured" in body and "Fixes applied (0):\n- none" in body
