"""`opslib notify test` and `opslib notify summary`: a clearly marked test message through
a profile's channels, and the period summary the schedule sends. Both deliver through
`alerting.notify`, print one line per channel, and exit 0 when every channel took the
message, 1 when one did not, 2 when the profile has no channel to send through. Neither
reads or changes the alert state. Registered by the CLI like the archive's commands;
handlers import what they need when they run."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from opslib.errors import OpslibError

if TYPE_CHECKING:
    from opslib.alerting.notify import Delivery
    from opslib.profiles import Channel, Profile

NO_CHANNEL = 2


class NoChannel(OpslibError):
    """The profile has no channel to send through (exit 2, not a usage error)."""


def _channels(profile: Profile, only: str | None) -> dict[str, Channel]:
    channels = dict(profile.notify.channels) if profile.notify else {}
    if not channels:
        raise NoChannel(f"profile {profile.name} has no notification channels (notify.channels)")
    if only is None:
        return channels
    if only not in channels:
        raise OpslibError(
            f"profile {profile.name} has no channel {only!r} (it has: {', '.join(channels)})"
        )
    return {only: channels[only]}


def _exit_code(profile: Profile, deliveries: list[Delivery]) -> int:
    for delivery in deliveries:
        print(delivery.line())
    if all(delivery.outcome == "off" for delivery in deliveries):
        print(
            f"opslib: no channel of profile {profile.name} is switched on "
            "(set the variables its addresses name)",
            file=sys.stderr,
        )
        return NO_CHANNEL
    return 0 if all(delivery.outcome == "delivered" for delivery in deliveries) else 1


def _load(args: argparse.Namespace) -> Profile:
    from opslib.profiles import default_profile_name, load_profile

    return load_profile(args.profile or default_profile_name())


def _cmd_test(args: argparse.Namespace) -> int:
    from opslib.alerting.notify import compose_test_message, send_to_channels
    from opslib.clock import utc_now

    profile = _load(args)
    try:
        channels = _channels(profile, args.channel)
    except NoChannel as exc:
        print(f"opslib: {exc}", file=sys.stderr)
        return NO_CHANNEL
    deliveries = []
    for name, channel in channels.items():  # each message names its own channel
        subject, body = compose_test_message(profile, name, utc_now())
        deliveries += send_to_channels(profile, {name: channel}, subject, body)
    return _exit_code(profile, deliveries)


def _cmd_summary(args: argparse.Namespace) -> int:
    from opslib.alerting.notify import record_delivery, send_to_channels
    from opslib.alerting.summary import build
    from opslib.archive.ledger import Ledger, ledger_exists
    from opslib.clock import utc_now

    profile = _load(args)
    periods = (
        [args.period] if args.period else list(profile.notify.summary if profile.notify else [])
    )
    if not periods:
        raise OpslibError(
            f"profile {profile.name} names no summary period (notify.summary): give --period"
        )
    try:
        channels = _channels(profile, None) if not args.dry_run else {}
    except NoChannel as exc:
        print(f"opslib: {exc}", file=sys.stderr)
        return NO_CHANNEL
    ledger = Ledger() if ledger_exists() else None
    now = utc_now()
    deliveries: list[Delivery] = []
    for period in periods:
        summary = build(ledger, profile.name, period, now)
        subject, body = summary.subject(), summary.body()
        if args.dry_run:
            print(f"{subject}\n\n{body}\n")
            continue
        print(subject)
        sent = send_to_channels(profile, channels, subject, body)
        if ledger is not None:
            record_delivery(ledger, sent, run_id=f"summary-{period}-{now:%Y%m%dT%H%M%S}",
                            runbook=f"{period} summary", profile=profile.name, at=now,
                            subject=subject, body=body)  # fmt: skip
        deliveries += sent
    return _exit_code(profile, deliveries) if not args.dry_run else 0


def register(commands: argparse._SubParsersAction) -> None:
    """Add `notify test` and `notify summary` to the CLI."""
    profile_help = "profile name or YAML path (default: $OPSLIB_PROFILE or demo)"
    notify = commands.add_parser(
        "notify", help="test the notification channels, send a period summary"
    )
    # the subcommands fail the way the parser the CLI made for `notify` does
    actions = notify.add_subparsers(dest="notify_command", required=True, parser_class=type(notify))
    test = actions.add_parser(
        "test", help="send a test message through each channel and report each one's result"
    )
    test.add_argument("--profile", help=profile_help)
    test.add_argument("--channel", help="only this channel of the profile")
    test.set_defaults(handler=_cmd_test)

    summary = actions.add_parser(
        "summary", help="send the runs, costs and fixes of the last day or week, changed or not"
    )
    summary.add_argument("--profile", help=profile_help)
    summary.add_argument(
        "--period",
        choices=["daily", "weekly"],
        help="default: the periods the profile's notify.summary names",
    )
    summary.add_argument("--dry-run", action="store_true", help="print the message, send nothing")
    summary.set_defaults(handler=_cmd_summary)
