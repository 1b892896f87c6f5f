"""`opslib schedule`: show, cron, install and export the schedule in parameters/schedule.yaml.

Handlers import `opslib.schedule` when they run, so `opslib run` does not pay for pydantic,
python-crontab or the runbooks' parameter inspection at start-up.
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from pathlib import Path

from opslib.clock import naive_utc


def _moment(text: str) -> datetime:
    """`--at`: an ISO time; with an offset it is converted, without one it is UTC."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO time such as 2026-11-23T09:00"
        ) from None
    return naive_utc(moment)


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive whole number")
    return value


def _schedule_file(args: argparse.Namespace) -> Path:
    from opslib.schedule.entries import default_schedule_path

    return args.file or default_schedule_path()


def _cmd_show(args: argparse.Namespace) -> int:
    import humanfriendly

    from opslib.clock import utc_now
    from opslib.schedule.entries import load_schedule, next_runs

    entries = load_schedule(_schedule_file(args))
    after = args.at or utc_now()
    rows = [
        ("runbook", "profile", "cron", "timeout", f"next runs after {after:%Y-%m-%d %H:%M} UTC")
    ]
    for entry in entries:
        runs = ", ".join(
            f"{moment:%Y-%m-%d %H:%M}" for moment in next_runs(entry, after, args.count)
        )
        timeout = humanfriendly.format_timespan(entry.timeout)
        rows.append((entry.job, entry.profile, entry.cron, timeout, runs))
    widths = [max(len(row[column]) for row in rows) for column in range(4)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row[:4], widths, strict=True)]
        print("  ".join([*cells, row[4]]))
    if not entries:
        print("(the schedule is empty)")
    return 0


def _cmd_cron(args: argparse.Namespace) -> int:
    from opslib.schedule.cron import cron_lines
    from opslib.schedule.entries import load_schedule

    print("\n".join(cron_lines(load_schedule(_schedule_file(args)))))
    return 0


def _cmd_install(args: argparse.Namespace) -> int:
    from opslib.schedule.cron import install, ledger_note, local_time_note
    from opslib.schedule.entries import load_schedule

    source = _schedule_file(args)
    entries = load_schedule(source)
    crontab = install(entries, source, args.tabfile, dry_run=args.dry_run)
    if args.dry_run:
        print(crontab, end="")
    else:
        target = args.tabfile or "your crontab"
        print(f"installed {len(entries)} schedule line(s) into {target}")
    for note in (local_time_note(), ledger_note()):
        if note:
            print(note, file=sys.stderr)
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from opslib.schedule.entries import load_schedule
    from opslib.schedule.export import export_airflow, export_k8s

    source = _schedule_file(args)
    entries = load_schedule(source)
    if args.airflow:
        written = [export_airflow(entries, source, args.airflow)]
    else:
        written = export_k8s(entries, source, args.k8s, args.image)
    for path in written:
        print(f"wrote {path}")
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    """Add the `schedule` command and its subcommands to the CLI."""
    file_help = "schedule file (default: parameters/schedule.yaml)"
    schedule = commands.add_parser(
        "schedule", help="the runbook schedule (parameters/schedule.yaml)"
    )
    schedule.add_argument("--file", type=Path, help=file_help)
    # --file is also accepted after the subcommand; SUPPRESS keeps a value given before it
    after = argparse.ArgumentParser(add_help=False)
    after.add_argument("--file", type=Path, default=argparse.SUPPRESS, help=file_help)
    # the subcommands fail the way the parser the CLI made for `schedule` does
    actions = schedule.add_subparsers(
        dest="schedule_command", required=True, parser_class=type(schedule)
    )

    show = actions.add_parser("show", parents=[after], help="each entry and its next runs (UTC)")
    show.add_argument("--at", type=_moment, help="list runs after this ISO time (default: now)")
    show.add_argument("--count", type=_count, default=3, help="runs per entry (default: 3)")
    show.set_defaults(handler=_cmd_show)

    cron = actions.add_parser(
        "cron", parents=[after], help="print the crontab lines (locations, then one per entry)"
    )
    cron.set_defaults(handler=_cmd_cron)

    install = actions.add_parser(
        "install", parents=[after], help="put the schedule into the crontab, between markers"
    )
    install.add_argument("--tabfile", type=Path, help="write this crontab file instead of yours")
    install.add_argument(
        "--dry-run", action="store_true", help="print the resulting crontab, change nothing"
    )
    install.set_defaults(handler=_cmd_install)

    export = actions.add_parser(
        "export", parents=[after], help="write Airflow DAGs or Kubernetes CronJobs"
    )
    target = export.add_mutually_exclusive_group(required=True)
    target.add_argument("--airflow", type=Path, metavar="DIR", help="write DIR/opslib_runbooks.py")
    target.add_argument("--k8s", type=Path, metavar="DIR", help="write one CronJob YAML per entry")
    export.add_argument(
        "--image", default="opslib:latest", help="container image (default: opslib:latest)"
    )
    export.set_defaults(handler=_cmd_export)
