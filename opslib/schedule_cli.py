"""`opslib schedule`: show, cron, install and export the schedule in parameters/schedule.yaml."""

from __future__ import annotations

import argparse


def register(commands: argparse._SubParsersAction) -> None:
    """Add the `schedule` command and its subcommands to the CLI."""
    schedule = commands.add_parser(
        "schedule", help="the runbook schedule (parameters/schedule.yaml)"
    )
    schedule.set_defaults(handler=lambda args: 0)
