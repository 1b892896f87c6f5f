"""`opslib`: run, list, profile check, history, index, demo.

Exit codes follow monitoring plugins: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN — and 3
for anything that stopped a run from happening (bad input included), always as one line
on stderr. `--debug` shows the traceback of an unexpected error.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from opslib import paths
from opslib.clock import utc_now
from opslib.context import RunContext
from opslib.demo import DEMOS
from opslib.errors import OpslibError
from opslib.runner import DEFAULT_CELL_TIMEOUT_S, DEFAULT_TOTAL_TIMEOUT_S
from opslib.status import Status
from opslib.units import duration_argument

if TYPE_CHECKING:
    from opslib.runner.run import RunOutcome

USAGE_ERROR = int(Status.UNKNOWN)


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
        )
    except OpslibError as exc:
        if args.format == "text":
            raise
        # a monitoring system still gets its one line, and a person the reason on stderr
        print(exporters.render(
            args.format, runbook=args.runbook, profile=args.profile or "", status=Status.UNKNOWN,
            headline=f"not run: {exc}", results=[], duration_s=0.0, finished_at=utc_now(),
            report=None,
        ))  # fmt: skip
        print(f"opslib: {exc}", file=sys.stderr)
        return USAGE_ERROR
    _export(outcome, args)
    return outcome.exit_code


def _export(outcome: RunOutcome, args: argparse.Namespace) -> None:
    """Print the outcome in the asked format; write the Prometheus textfile if asked."""
    from opslib.archive import exporters

    facts = {"runbook": outcome.runbook, "profile": outcome.profile, "status": outcome.status,
             "results": outcome.results, "duration_s": outcome.duration_s,
             "finished_at": outcome.finished_at}  # fmt: skip
    report = paths.shown(outcome.html_path) if outcome.html_path else None
    print(
        exporters.render(
            args.format, **facts, headline=outcome.headline, report=report, notices=outcome.notices
        )
    )
    metrics = args.prometheus or os.environ.get("OPSLIB_PROMETHEUS_DIR")
    if metrics:
        try:
            exporters.write_prometheus(Path(metrics), **facts)
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


def _cmd_list(_args: argparse.Namespace) -> int:
    from opslib.notebooks import declared_parameters, purpose, runbook_paths

    for name, path in runbook_paths().items():
        parameters = ", ".join(
            f"{key}={spec['default']}"
            for key, spec in declared_parameters(path).items()
            if key != "profile"
        )
        print(f"{name:<24} {path.parent.name:<10} {purpose(path)}")
        print(f"{'':<24} {'':<10} parameters: {parameters or 'none'}")
    return 0


def _cmd_profile_check(args: argparse.Namespace) -> int:
    from opslib.profiles import load_profile
    from opslib.runbook.targets import check_targets

    profile = load_profile(args.name)
    profile.resolve_all()
    results = check_targets(profile)
    for result in results:
        print(f"{result.status.name:<8} {result.name}: {result.summary}")
    worst = Status.worst([r.status for r in results])
    print(
        f"{worst.name} profile {profile.name} ({profile.source}): valid, {len(results)} target(s) checked"
    )
    return int(worst)


def _cmd_history(args: argparse.Namespace) -> int:
    from opslib.archive.ledger import Ledger, ledger_exists
    from opslib.archive.printing import history_lines

    if args.limit < 1:
        raise OpslibError("--limit must be at least 1")
    if args.since and args.until and args.since <= args.until:
        raise OpslibError("--since must reach further back than --until: nothing can match")
    now = utc_now()
    since = now - timedelta(seconds=args.since) if args.since else None
    until = now - timedelta(seconds=args.until) if args.until else None
    rows = (
        Ledger().history(
            args.runbook, args.profile, args.limit, status=args.status, since=since, until=until
        )
        if ledger_exists()
        else []
    )
    filtered = any(getattr(args, key) for key in ("runbook", "profile", "status", "since", "until"))
    print("\n".join(history_lines(rows, filtered)))
    return 0


def _cmd_prune(args: argparse.Namespace) -> int:
    """The retention policy as a plan through the one plan gate, like every other fix."""
    from opslib.actions import execute
    from opslib.archive.index import write_index
    from opslib.archive.ledger import Ledger, ledger_exists
    from opslib.archive.retention import PruneArchive, load_policy

    policy = load_policy(args.policy)  # a bad policy is an error, ledger or not
    if not ledger_exists():
        print("no ledger yet: nothing to prune")
        return 0
    ledger = Ledger()
    context = replace(RunContext.current("archive", "*"), run_id="archive-prune", by=args.by)
    outcome = execute(
        PruneArchive(policy, ledger), context, lambda: ledger, apply=args.apply,
        approve=args.approve, how_to_apply="--apply or --approve {hash}",
    )  # fmt: skip
    print(f"plan {outcome.plan.hash}: {outcome.plan.summary}")
    if outcome.plan.context is not None:
        print(outcome.plan.context.to_string(index=False))
    print(outcome.message)
    if outcome.applied is not None:
        done = outcome.applied.changes[0]
        print(
            f"{done['runs']} run(s) and {done['files']} file(s) removed, "
            f"{done['notebooks']} notebook(s) gzipped"
        )
        write_index(ledger)
    return USAGE_ERROR if outcome.mode in ("stale-approval", "failed") else 0


def _cmd_show(args: argparse.Namespace) -> int:
    from opslib.archive.ledger import Ledger, ledger_exists
    from opslib.archive.printing import run_lines

    if not ledger_exists():
        raise OpslibError(f"no ledger yet in {paths.shown(paths.reports_dir())}: nothing has run")
    try:
        run, results = Ledger().run(args.run_id)
    except LookupError as exc:
        raise OpslibError(str(exc)) from None
    print("\n".join(run_lines(run, results)))
    return int(Status[run["status"]])


def _cmd_index(_args: argparse.Namespace) -> int:
    from opslib.archive.index import write_index

    print(f"index: {paths.shown(write_index())}")
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
    run.add_argument(
        "--profile", help="profile name or YAML path (default: $OPSLIB_PROFILE or demo)"
    )
    run.add_argument("-p", dest="parameter", action="append", default=[], metavar="KEY=VALUE")
    run.add_argument("--reports", type=Path, help="archive folder (default: reports/)")
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

    commands.add_parser("list", help="runbooks, their group, purpose and parameters").set_defaults(
        handler=_cmd_list
    )

    profile = commands.add_parser("profile", help="profile commands")
    profile_commands = profile.add_subparsers(
        dest="profile_command", required=True, parser_class=OneLineParser
    )
    check = profile_commands.add_parser(
        "check", help="validate a profile and test that its targets answer"
    )
    check.add_argument("name")
    check.set_defaults(handler=_cmd_profile_check)

    history = commands.add_parser("history", help="past runs from the ledger, newest first")
    history.add_argument("--runbook")
    history.add_argument("--profile")
    history.add_argument("--status", choices=[status.name for status in Status])
    history.add_argument(
        "--since", type=duration_argument, metavar="DURATION", help="started within, e.g. '2 days'"
    )
    history.add_argument(
        "--until",
        type=duration_argument,
        metavar="DURATION",
        help="started before, e.g. '1 hour' ago",
    )
    history.add_argument("--limit", type=int, default=20)
    history.add_argument("--reports", type=Path, help="archive folder (default: reports/)")
    history.set_defaults(handler=_cmd_history)

    archive = commands.add_parser("archive", help="archive upkeep")
    archive_commands = archive.add_subparsers(
        dest="archive_command", required=True, parser_class=OneLineParser
    )
    prune = archive_commands.add_parser(
        "prune", help="apply the retention policy (parameters/retention.yaml), as a plan first"
    )
    prune.add_argument("--policy", type=Path, help="another retention policy file")
    prune.add_argument("--apply", action="store_true", help="carry out the plan shown")
    prune.add_argument("--approve", default="", metavar="HASH", help="apply only this plan")
    prune.add_argument("--by", default="", help="who asked for it, for the audit trail")
    prune.add_argument("--reports", type=Path, help="archive folder (default: reports/)")
    prune.set_defaults(handler=_cmd_prune)

    show = commands.add_parser("show", help="one run's checks, by its id (or a unique prefix)")
    show.add_argument("run_id")
    show.add_argument("--reports", type=Path, help="archive folder (default: reports/)")
    show.set_defaults(handler=_cmd_show)

    from opslib.schedule.cli import register as register_schedule

    register_schedule(commands)

    ack = commands.add_parser(
        "ack", help="silence a runbook's notifications (not its reports) for a while"
    )
    ack.add_argument("runbook")
    ack.add_argument("check", nargs="?", help="one check (e.g. stuck_jobs); default: all")
    ack.add_argument(
        "--profile", help="profile name or YAML path (default: $OPSLIB_PROFILE or demo)"
    )
    ack.add_argument(
        "--until", required=True, type=duration_argument, help="how long, e.g. '2 hours'"
    )
    ack.add_argument("--by", required=True, help="who acknowledges")
    ack.add_argument("--reason", required=True, help="why, for the others on call")
    ack.set_defaults(handler=_cmd_ack)

    index = commands.add_parser("index", help="rebuild reports/index.html from the ledger")
    index.add_argument("--reports", type=Path, help="archive folder (default: reports/)")
    index.set_defaults(handler=_cmd_index)

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
    from opslib.paths import absolutize_environment

    args = build_parser().parse_args(argv)
    if getattr(args, "reports", None):
        os.environ["OPSLIB_REPORTS_DIR"] = str(args.reports)
    absolutize_environment()
    try:
        return args.handler(args)
    except OpslibError as exc:
        print(f"opslib: {exc}", file=sys.stderr)
        return USAGE_ERROR
    except KeyboardInterrupt:
        print("opslib: interrupted", file=sys.stderr)
        return USAGE_ERROR
    except Exception as exc:
        if args.debug:
            raise
        from opslib.profiles.secrets import scrub

        first_line = (str(exc).strip().splitlines() or [""])[0]
        print(
            f"opslib: internal error: {type(exc).__name__}: {scrub(first_line)} "
            "(--debug shows the traceback)",
            file=sys.stderr,
        )
        return USAGE_ERROR


if __name__ == "__main__":
    sys.exit(main())
