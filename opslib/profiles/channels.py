"""Where a profile's notifications go and when they must stay quiet."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, model_validator

from opslib.clock import naive_utc
from opslib.profiles.fields import Seconds, StrictModel


class SmtpChannel(StrictModel):
    host: str
    port: int = 25
    starttls: bool = False
    username: str | None = None  # ${VAR}: credentials come from the environment
    password: str | None = None
    sender: str
    to: list[str]
    timeout: Seconds = 10.0


class WebhookChannel(StrictModel):
    url: str  # ${VAR}: a Slack-style incoming webhook URL is a secret
    timeout: Seconds = 10.0


class Channel(StrictModel):
    """Where a notification goes: one of an SMTP server, a webhook, or a command that
    gets the message on its standard input."""

    smtp: SmtpChannel | None = None
    webhook: WebhookChannel | None = None
    command: list[str] | None = None
    timeout: Seconds = 30.0  # for the command

    @model_validator(mode="after")
    def _exactly_one(self) -> Channel:
        kinds = [kind for kind in ("smtp", "webhook", "command") if getattr(self, kind)]
        if len(kinds) != 1:
            raise ValueError(
                f"a channel is one of smtp, webhook or command (got {kinds or 'none'})"
            )
        return self


class Window(StrictModel):
    """A maintenance window: no notification is sent inside it (reports still are)."""

    start: datetime
    end: datetime
    reason: str = ""

    @model_validator(mode="after")
    def _utc(self) -> Window:
        """Times with a zone become naive UTC, the way opslib compares every time."""
        for key in ("start", "end"):
            object.__setattr__(self, key, naive_utc(getattr(self, key)))
        if self.end <= self.start:
            raise ValueError("a maintenance window ends after it starts")
        return self


def _periods(value: Any) -> Any:
    """`summary: daily` or `summary: [daily, weekly]`: one period or a list of them."""
    return [value] if isinstance(value, str) else value


SummaryPeriod = Literal["daily", "weekly"]


class Notify(StrictModel):
    """When and where a runbook's results are sent: on a change of (hard) state and on
    recovery; a state is hard after `hard_after` consecutive results; a CRITICAL is
    repeated every `repeat_critical` while it lasts. `summary` names the periods whose
    summary (`opslib notify summary`) is sent whether anything changed or not."""

    channels: dict[str, Channel]
    hard_after: Annotated[int, Field(ge=1)] = 1
    repeat_critical: Seconds | None = None
    maintenance: list[Window] = []
    summary: Annotated[list[SummaryPeriod], BeforeValidator(_periods)] = []
