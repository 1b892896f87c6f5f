"""A duration reads the same wherever a person writes one: a profile's timeout, a
schedule's, a retention period, `opslib run --timeout`, `history --since`, `ack --until`."""

from __future__ import annotations

import argparse

import pytest
from pydantic import BaseModel, ValidationError
from support import Workspace

from opslib.archive.retention import Policy
from opslib.profiles.fields import Seconds
from opslib.units import DAY_S, duration_argument, parse_duration

ACCEPTED = {"300": 300, "5 min": 300, "5m": 300, "90s": 90, "1.5 h": 5400, "2 days": 172800}
REFUSED = ["0", "-5", "1 GB", "512 MiB", "95%", "soon", "", "inf"]


class Timed(BaseModel):
    timeout: Seconds


@pytest.mark.parametrize(("text", "seconds"), ACCEPTED.items())
def test_the_yaml_and_the_command_line_read_a_duration_alike(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds
    assert duration_argument(text) == seconds
    assert Timed(timeout=text).timeout == seconds
    assert Policy(keep_all=text, keep_daily="400 days").keep_all == seconds / DAY_S


@pytest.mark.parametrize("text", REFUSED)
def test_what_is_no_positive_duration_is_refused_everywhere(text: str) -> None:
    with pytest.raises(ValueError, match="is not a positive duration"):
        parse_duration(text)
    with pytest.raises(argparse.ArgumentTypeError):
        duration_argument(text)
    with pytest.raises(ValidationError):
        Timed(timeout=text)


def test_a_retention_period_may_be_zero_a_timeout_may_not() -> None:
    assert Policy(keep_all="0", keep_daily="0").keep_all == 0
    with pytest.raises(ValidationError):
        Timed(timeout="0")


def test_the_command_line_takes_human_durations(workspace: Workspace) -> None:
    history = workspace.opslib("history", "--since", "5 min")
    assert history.returncode == 0 and history.stdout.strip() == "no runs recorded that match"
    ack = workspace.opslib(
        "ack", "morning-check", "--until", "5 min", "--by", "alice", "--reason", "known"
    )
    assert ack.returncode == 0 and "acknowledged every check" in ack.stdout, ack.stderr
    # the timeout is read; the run is refused only for its unknown runbook
    run = workspace.opslib("run", "no-such-runbook", "--timeout", "5 min", "--cell-timeout", "1m")
    assert run.returncode == 3 and "no runbook named 'no-such-runbook'" in run.stderr
    refused = workspace.opslib("run", "morning-check", "--timeout", "1 GB")
    assert refused.returncode == 3 and "is not a positive duration" in refused.stderr
