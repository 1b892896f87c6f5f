"""Notifications after a run: one message per run about the checks whose state changed,
to every channel of the profile (SMTP, webhook, command).

Delivery can fail (the mail server is down); that never changes the run's status or
loses its report. A failed delivery is recorded in the ledger with its message and sent
again at the next run of any runbook on the profile. Messages carry the status, what
changed and where the report is, scrubbed of every registered secret.

`send_to_channels` is the one delivery of every message: a run's alert, the test message
of `opslib notify test` and the period summaries of `alerting.summary`.
"""

from __future__ import annotations

import getpass
import smtplib
import socket
import subprocess
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage

import requests
import sqlalchemy as sa

from opslib.alerting.severity import Severity
from opslib.alerting.state import Change, update
from opslib.archive.ledger import Ledger
from opslib.archive.tables import notifications
from opslib.checks import CheckResult
from opslib.profiles import Channel, Profile
from opslib.profiles.needs import switched_off
from opslib.profiles.secrets import scrub
from opslib.status import Status


class DeliveryError(Exception):
    """A channel did not take the message; the reason is scrubbed."""


def compose(
    runbook: str, profile: str, changes: list[Change], report: str, severity: str = ""
) -> tuple[str, str]:
    """Subject and body of the message about `changes` (and the run's incident level)."""
    worst = Status.worst([change.after for change in changes])
    recovered = all(change.after is Status.OK for change in changes)
    state = "RECOVERED" if recovered else worst.name
    subject = f"[opslib] {state} {runbook} on {profile}: {len(changes)} change(s)"
    lines = [
        f"{change.check}: {change.before.name} -> {change.after.name}"
        + (" (still)" if change.repeat else "")
        + f" - {change.summary}"
        for change in changes
    ]
    body = "\n".join([*lines, "", *([severity] if severity else []), f"report: {report}"])
    return scrub(subject), scrub(body)


def _smtp(channel: Channel, profile: Profile, subject: str, body: str) -> None:
    settings = channel.smtp
    message = EmailMessage()
    message["Subject"], message["From"], message["To"] = (
        subject,
        profile.expand(settings.sender, "notify.smtp.sender"),
        ", ".join(filter(None, (profile.expand(to, "notify.smtp.to") for to in settings.to))),
    )
    message.set_content(body)
    host = profile.expand(settings.host, "notify.smtp.host")
    with smtplib.SMTP(host, settings.port, timeout=settings.timeout) as server:
        if settings.starttls:
            server.starttls()
        username = profile.expand(settings.username or "", "notify.smtp.username")
        if username:
            server.login(username, profile.expand(settings.password or "", "notify.smtp.password"))
        server.send_message(message)


def _webhook(channel: Channel, profile: Profile, subject: str, body: str) -> None:
    url = profile.expand(channel.webhook.url, "notify.webhook.url", url=True)
    response = requests.post(
        url, json={"text": f"{subject}\n{body}"}, timeout=channel.webhook.timeout
    )
    response.raise_for_status()


def _command(channel: Channel, profile: Profile, subject: str, body: str) -> None:
    subprocess.run(
        channel.command, input=f"{subject}\n\n{body}", text=True, capture_output=True,
        timeout=channel.timeout, check=True,
    )  # fmt: skip


def deliver(channel: Channel, profile: Profile, subject: str, body: str) -> None:
    """Send one message through one channel; any failure (a server down, a variable not
    set) is a one-line DeliveryError, so one bad channel never silences the others."""
    send = _smtp if channel.smtp else _webhook if channel.webhook else _command
    try:
        send(channel, profile, subject, body)
    except requests.RequestException as exc:
        # its text quotes the URL's path, which for a webhook is the secret part
        status = getattr(exc.response, "status_code", None)
        raise DeliveryError(type(exc).__name__ + (f" (HTTP {status})" if status else "")) from None
    except Exception as exc:  # noqa: BLE001 - recorded and retried, never raised into the run
        raise DeliveryError(scrub(f"{type(exc).__name__}: {exc}".splitlines()[0])) from None


def switched_off_reason(profile: Profile, channel: Channel) -> str:
    """Why a channel is off ('' when it is on): a shipped profile names a webhook URL or
    an SMTP host as `${VAR:-}`, and the environment turns the channel on."""
    if channel.webhook is not None and switched_off(
        profile, channel.webhook.url, "notify.webhook.url"
    ):
        return "its address is set to nothing"
    if channel.smtp is not None and not profile.expand(channel.smtp.host, "notify.smtp.host"):
        return "its mail server is set to nothing"
    return ""


@dataclass(frozen=True)
class Delivery:
    """What became of one message on one channel: `delivered`, `failed` (with the
    scrubbed reason) or `off` (the channel is switched off, nothing was tried)."""

    channel: str
    outcome: str
    reason: str = ""
    seconds: float = 0.0

    def line(self) -> str:
        if self.outcome == "delivered":
            return f"{self.channel}: delivered ({self.seconds:.1f} s)"
        if self.outcome == "off":
            return f"{self.channel}: off, {self.reason}"
        return f"{self.channel}: failed after {self.seconds:.1f} s: {self.reason}"


def send_to_channels(
    profile: Profile, channels: dict[str, Channel], subject: str, body: str
) -> list[Delivery]:
    """Send one message through each of `channels` (the profile's, or some of them), one
    after the other, each within its own timeout; a failure never stops the others."""
    deliveries = []
    for name, channel in channels.items():
        try:
            off = switched_off_reason(profile, channel)
        except Exception as exc:  # noqa: BLE001 - a variable without default not set
            deliveries.append(Delivery(name, "failed", scrub(str(exc).splitlines()[0])))
            continue
        if off:
            deliveries.append(Delivery(name, "off", off))
            continue
        started = time.monotonic()
        try:
            deliver(channel, profile, subject, body)
        except DeliveryError as exc:
            deliveries.append(Delivery(name, "failed", str(exc), time.monotonic() - started))
            continue
        deliveries.append(Delivery(name, "delivered", seconds=time.monotonic() - started))
    return deliveries


def compose_test_message(profile: Profile, channel: str, now: datetime) -> tuple[str, str]:
    """A message that says plainly it is a test and where it came from; no profile value
    beyond the names of the profile and the channel."""
    subject = f"[opslib] TEST message for {profile.name} via {channel} (no action needed)"
    body = "\n".join(
        [
            f"This is a test of the notification channel {channel!r} of profile {profile.name}.",
            f"Sent by `opslib notify test` at {now:%Y-%m-%d %H:%M:%S} UTC "
            f"from {getpass.getuser()}@{socket.gethostname()}.",
            "If you read this, the channel works. Nothing is wrong and nothing needs doing.",
        ]
    )
    return scrub(subject), scrub(body)


def record_delivery(ledger: Ledger, deliveries: list[Delivery], **row: object) -> None:
    """Keep the outcome of each delivery of a message (an alert, a summary): a failed one
    is sent again at the next run on the profile."""
    for delivery in deliveries:
        if delivery.outcome == "off":
            continue
        failed = delivery.outcome == "failed"
        _record(ledger, **row, channel=delivery.channel, outcome="failed" if failed else "sent",
                error=delivery.reason if failed else None)  # fmt: skip


def _record(ledger: Ledger, **row: object) -> None:
    with ledger.engine.begin() as connection:
        connection.execute(notifications.insert().values(**row))


RETRY_FOR = timedelta(days=1)  # an older message is stale: marked expired, not sent


def _retry_failed(ledger: Ledger, profile: Profile, now: datetime) -> None:
    """Send again what earlier runs failed to deliver, oldest first. Each row is claimed
    before it is sent (two runbooks on the profile never both resend it), a channel that
    fails again is not tried further in this run, and a day-old message expires."""
    with ledger.engine.begin() as connection:
        connection.execute(
            notifications.update()
            .where(
                notifications.c.profile == profile.name,
                notifications.c.outcome == "failed",
                notifications.c.at < now - RETRY_FOR,
            )
            .values(outcome="expired")
        )
        failed = (
            connection.execute(
                sa.select(notifications)
                .where(notifications.c.profile == profile.name, notifications.c.outcome == "failed")
                .order_by(notifications.c.id)
            )
            .mappings()
            .all()
        )
    still_down: set[str] = set()
    for row in failed:
        channel = profile.notify.channels.get(row["channel"])
        if channel is None or row["channel"] in still_down:
            continue
        with ledger.engine.begin() as connection:
            claimed = connection.execute(
                notifications.update()
                .where(notifications.c.id == row["id"], notifications.c.outcome == "failed")
                .values(outcome="retrying")
            ).rowcount
        if not claimed:
            continue
        try:
            deliver(channel, profile, f"{row['subject']} (delayed)", row["body"])
            outcome = "retried"
        except DeliveryError:
            still_down.add(row["channel"])
            outcome = "failed"
        with ledger.engine.begin() as connection:
            connection.execute(
                notifications.update()
                .where(notifications.c.id == row["id"])
                .values(outcome=outcome)
            )


def after_run(
    ledger: Ledger,
    profile: Profile,
    runbook: str,
    run_id: str,
    results: list[CheckResult],
    severity: Severity | None,
    report: str,
    now: datetime,
) -> list[str]:
    """Update the alert state with a run's results and send what changed to the channels
    of `profile.notify` (the caller skips a profile without any); returns one line per
    delivery outcome for the run's output. `severity` is the run's, as classified once
    by the runner for its headline; `ledger` is the one the run was recorded in."""
    _retry_failed(ledger, profile, now)
    changes = update(ledger, profile, runbook, results, now)
    audible = [change for change in changes if not change.silenced_by]
    said = [
        f"not notified, {change.check}: {change.silenced_by}"
        for change in changes
        if change.silenced_by
    ]
    if not audible:
        return said
    subject, body = compose(runbook, profile.name, audible, report, str(severity or ""))
    deliveries = send_to_channels(profile, profile.notify.channels, subject, body)
    record_delivery(ledger, deliveries, run_id=run_id, runbook=runbook, profile=profile.name,
                    at=now, subject=subject, body=body)  # fmt: skip
    for delivery in deliveries:
        if delivery.outcome == "off":
            said.append(f"not notified, channel {delivery.channel}: {delivery.reason}")
        elif delivery.outcome == "failed":
            said.append(
                f"notification to {delivery.channel} failed (will retry next run): "
                f"{delivery.reason}"
            )
        else:
            said.append(f"notified {delivery.channel}: {subject}")
    return said
