"""`opslib`: run, list, profile check, history, index, demo, notify.

Exit codes follow monitoring plugins: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN — and 3
for anything that stopped a run from happening (bad input included), always as one line
on stderr. `--debug` shows the traceback of an unexpected error.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from opslib import paths
from opslib.alerting.cli import register as register_notify
from opslib.archive.cli import REPORTS_HELP, USAGE_ERROR
from opslib.archive.cli import register as register_archive
from opslib.clock import Deadline, process_age_s, utc_now
from opslib.demo import DEMOS
from opslib.errors import OpslibError
from opslib.profiles.secrets import scrub
from opslib.runner import DEFAULT_CELL_TIMEOUT_S, DEFAULT_TOTAL_TIMEOUT_S
from opslib.status import Status
from opslib.units import duration_argument

if TYPE_CHECKING:
    from opslib.runner.outcome import RunOutcome

PROFILE_HELP = "profile name or YAML path (default: $OPSLIB_PROFILE or demo)"


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line and exit 3 like every other user error."""

    def error(self, message: str) -> NoReturn:
        self.exit(USAGE_ERROR, f"opslib: {message} (see {self.prog} --help)\n")


def _cmd_run(args: argparse.Namespace) -> int:
    from opslib.archive import exporters
    from opslib.profiles import default_profile_name
    from opslib.runner.run import run

    try:
        if args.profile == "":
            raise OpslibError("--profile needs a name or a YAML path")
        outcome = run(
            args.runbook,
            args.profile or default_profile_name(),
            args.parameter,
            by=args.by,
            wait=args.wait,
            cell_timeout_s=args.cell_timeout,
            total_timeout_s=args.timeout,
            deadline=_since_process_start(args.timeout),
        )
    except Exception as exc:
        if args.format == "text" or args.debug:
            raise
        # a monitoring system still gets its one line, and a person the reason on stderr
        reason = scrub(str(exc) if isinstance(exc, OpslibError) else _internal_error(exc))
        refused = exporters.RunSummary(
            args.runbook,
            args.profile or "",
            Status.UNKNOWN,
            f"not run: {reason}",
            [],
            0.0,
            utc_now(),
        )
        print(exporters.render(args.format, refused))
        print(f"opslib: {reason}", file=sys.stderr)
        return USAGE_ERROR
    _export(outcome, args)
    return outcome.exit_code


def _since_process_start(seconds: float) -> Deadline:
    """`seconds` counted from when this process started, not from when the run began:
    `--timeout` bounds the whole command cron waits for, interpreter start included."""
    return Deadline.after(seconds - process_age_s())


def _export(outcome: RunOutcome, args: argparse.Namespace) -> None:
    """Print the outcome in the asked format; write the Prometheus textfile if asked."""
    from opslib.archive import exporters

    summary = outcome.summary(paths.shown(outcome.html_path) if outcome.html_path else None)
    print(exporters.render(args.format, summary))
    metrics = args.prometheus or os.environ.get("OPSLIB_PROMETHEUS_DIR")
    if metrics:
        try:
            exporters.write_prometheus(Path(metrics), summary)
        except OSError as exc:  # the run and its report stand; its exit code too
            print(f"opslib: prometheus textfile not written to {metrics}: {exc}", file=sys.stderr)


def _cmd_ack(args: argparse.Namespace) -> int:
    from opslib.alerting.state import acknowledge
    from opslib.archive.ledger import Ledger
    from opslib.notebooks import find_runbook
    from opslib.profiles import load_profile

    find_runbook(args.runbook)  # an unknown runbook is a one-line error
    profile = load_profile(args.profile)
    now = utc_now()
    until = now + timedelta(seconds=args.until)
    acknowledge(Ledger(), args.runbook, profile.name, args.check, until, args.by, args.reason, now)
    what = args.check or "every check"
    print(
        f"acknowledged {what} of {args.runbook} on {profile.name} until {until:%Y-%m-%d %H:%M} UTC"
    )
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    from opslib.notebooks import applies, declared_parameters, purpose, runbook_paths
    from opslib.profiles import available_profiles, load_profile

    shipped = {name: load_profile(name) for name in available_profiles()}
    chosen = (shipped.get(args.profile) or load_profile(args.profile)) if args.profile else None
    for name, path in runbook_paths().items():
        if chosen is not None and not applies(path, chosen):
            continue
        parameters = ", ".join(
            f"{key}={spec['default']}"
            for key, spec in declared_parameters(path).items()
            if key != "profile"
        )
        fits = ", ".join(profile.name for profile in shipped.values() if applies(path, profile))
        print(f"{name:<24} {path.parent.name:<10} {purpose(path)}")
        print(f"{'':<24} {'':<10} parameters: {parameters or 'none'}")
        print(f"{'':<24} {'':<10} applies to: {fits or 'no shipped profile'}")
    return 0


def _cmd_profile_check(args: argparse.Namespace) -> int:
    from opslib.checks.catalogue import meaning_checks
    from opslib.profiles import load_profile
    from opslib.runbook.targets import check_targets

    profile = load_profile(args.name)
    profile.resolve_all()
    results = check_targets(profile)
    for result in results:
        print(f"{result.status.name:<8} {result.name}: {result.summary}")
    worst = Status.worst([r.status for r in results])
    mapping = [r for r in results if r.name.partition("[")[0] in meaning_checks()]
    read = f", mapping read in {len(mapping)} part(s)" if mapping else ""
    checked = f"{len(results) - len(mapping)} target(s) checked{read}"
    print(f"{worst.name} profile {profile.name} ({profile.source}): valid, {checked}")
    return int(worst)


def _cmd_manual(args: argparse.Namespace) -> int:
    """A pipeline's manual turned into commands; the schedule's entries on the profile
    are handed down to the archive's page, which sits below the schedule."""
    from opslib.archive.manual import Scheduled, build_page, manual_of, text_lines, write_page
    from opslib.profiles import load_profile
    from opslib.schedule.entries import ScheduleError, load_schedule, next_runs

    profile = load_profile(args.profile)
    manual_of(profile)  # no manual: one line, before the schedule is read
    now = utc_now()
    try:
        entries = load_schedule()
    except ScheduleError as exc:  # the manual stands without it; the page says why
        scheduled: list[Scheduled] | str = str(exc)
    else:
        scheduled = [
            Scheduled(entry.runbook, entry.cron, next(iter(next_runs(entry, now, 1)), None))
            for entry in entries
            if entry.runbook and entry.profile_name == profile.name
        ]
    page = build_page(profile, scheduled)
    if args.html:
        print(f"manual page: {paths.shown(write_page(page))}")
    else:
        print("\n".join(text_lines(page)))
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    said = DEMOS[args.pipeline].make(args.pipeline, args.profile, if_stale=args.if_stale)
    if said:
        print(said)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="opslib", description="Executable operations runbooks for data pipelines."
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks of unexpected errors")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)

    run = commands.add_parser(
        "run", help="execute a runbook, archive its report, exit with its status"
    )
    run.add_argument("runbook")
    run.add_argument("--profile", help=PROFILE_HELP)
    run.add_argument("-p", dest="parameter", action="append", default=[], metavar="KEY=VALUE")
    run.add_argument("--reports", type=Path, help=REPORTS_HELP)
    run.add_argument("--by", default="", help="who asked for this run, for the audit trail")
    run.add_argument(
        "--wait", action="store_true", help="wait for a running instance instead of refusing"
    )
    run.add_argument(
        "--timeout",
        type=duration_argument,
        default=DEFAULT_TOTAL_TIMEOUT_S,
        help="total run timeout (e.g. 300 or '5 min')",
    )
    run.add_argument(
        "--cell-timeout",
        type=duration_argument,
        default=DEFAULT_CELL_TIMEOUT_S,
        help="per-cell timeout (e.g. 60 or '1 min')",
    )
    run.add_argument(
        "--format",
        choices=["text", "nagios", "json"],
        default="text",
        help="text for people, one Nagios plugin line with perfdata, or JSON",
    )
    run.add_argument(
        "--prometheus",
        type=Path,
        metavar="DIR",
        help="also write a node-exporter textfile there (default: $OPSLIB_PROMETHEUS_DIR)",
    )
    run.set_defaults(handler=_cmd_run)

    listing = commands.add_parser(
        "list", help="runbooks, their group, purpose, parameters and the profiles they apply to"
    )
    listing.add_argument("--profile", help="only the runbooks that apply to this profile")
    listing.set_defaults(handler=_cmd_list)

    profile = commands.add_parser("profile", help="profile commands")
    profile_commands = profile.add_subparsers(
        dest="profile_command", required=True, parser_class=OneLineParser
    )
    check = profile_commands.add_parser(
        "check", help="validate a profile and test that its targets answer"
    )
    check.add_argument("name")
    check.set_defaults(handler=_cmd_profile_check)

    from opslib.schedule.cli import register as register_schedule

    register_archive(commands)
    register_schedule(commands)
    register_notify(commands)

    ack = commands.add_parser(
        "ack", help="silence a runbook's notifications (not its reports) for a while"
    )
    ack.add_argument("runbook")
    ack.add_argument("check", nargs="?", help="one check (e.g. stuck_jobs); default: all")
    ack.add_argument("--profile", help=PROFILE_HELP)
    ack.add_argument(
        "--until", required=True, type=duration_argument, help="how long, e.g. '2 hours'"
    )
    ack.add_argument("--by", required=True, help="who acknowledges")
    ack.add_argument("--reason", required=True, help="why, for the others on call")
    ack.set_defaults(handler=_cmd_ack)

    manual = commands.add_parser(
        "manual", help="a pipeline's manual as commands: symptoms, runbooks, schedule, levels"
    )
    manual.add_argument("profile", help="profile name or YAML path")
    manual.add_argument(
        "--html", action="store_true", help="write reports/manual-PROFILE.html for the board"
    )
    manual.add_argument("--reports", type=Path, help=REPORTS_HELP)
    manual.set_defaults(handler=_cmd_manual)

    demo = commands.add_parser(
        "demo", help="(re)create a pipeline's demo, or seed it into a profile"
    )
    demo.add_argument(
        "pipeline",
        nargs="?",
        choices=list(DEMOS),
        default="demo",
        help="; ".join(f"{name}: {entry.description}" for name, entry in DEMOS.items()),
    )
    demo.add_argument(
        "--profile", help="for a demo that seeds a profile: which (default: the pipeline's own)"
    )
    demo.add_argument(
        "--if-stale", action="store_true", help="only when missing (the demo: or older than 12 h)"
    )
    demo.set_defaults(handler=_cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "reports", None):
        os.environ["OPSLIB_REPORTS_DIR"] = str(args.reports)
    paths.absolutize_environment()
    paths.keep_new_files_private()
    try:
        return args.handler(args)
    except OpslibError as exc:
        print(f"opslib: {scrub(str(exc))}", file=sys.stderr)
        return USAGE_ERROR
    except KeyboardInterrupt:
        print("opslib: interrupted", file=sys.stderr)
        return USAGE_ERROR
    except Exception as exc:
        if args.debug:
            raise
        print(f"opslib: {scrub(_internal_error(exc))}", file=sys.stderr)
        return USAGE_ERROR


def _internal_error(exc: Exception) -> str:
    """An unexpected error as one line: its kind and first line, and how to see more."""
    first_line = (str(exc).strip().splitlines() or [""])[0]
    return f"internal error: {type(exc).__name__}: {first_line} (--debug shows the traceback)"


if __name__ == "__main__":
    sys.exit(main())
