"""The archive's commands: `opslib history` and `show` read the ledger, `index`
rebuilds the status board, `archive prune` applies the retention policy through the one
plan gate, `archive scan` looks for secrets and loose permissions. Registered by the CLI
like the schedule's commands; handlers import what they need when they run."""

from __future__ import annotations

import argparse
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

from opslib import paths
from opslib.clock import utc_now
from opslib.errors import OpslibError
from opslib.status import Status
from opslib.units import duration_argument

REPORTS_HELP = "archive folder (default: reports/)"
USAGE_ERROR = int(Status.UNKNOWN)  # exit 3 for whatever stopped a command; the CLI shares it


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
    from opslib.context import RunContext

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


def _cmd_scan(args: argparse.Namespace) -> int:
    from opslib.archive.scan import Unread, load_profiles, readable_by_others, scan, secrets_by_key
    from opslib.profiles import available_profiles

    root = paths.reports_dir()
    if not root.is_dir():
        raise OpslibError(f"no archive at {paths.shown(root)}")
    names = args.profile or available_profiles()
    profiles, not_loaded = load_profiles(names)
    secrets, unresolved = secrets_by_key(profiles)
    for line in [*not_loaded, *unresolved]:
        print(f"not looked for: {line}")
    unread: list[Unread] = []
    findings = scan(root, secrets, unread)
    for finding in findings:
        print(f"{paths.shown(finding.path)}: {finding.count} x {finding.what}")
    for problem in unread:
        print(f"{paths.shown(problem.path)}: not scanned ({problem.reason})")
    exposed = readable_by_others(root, paths.group_access_allowed())
    for path in exposed:
        try:
            mode = oct(path.stat().st_mode & 0o777)
        except OSError:  # gone since it was listed
            continue
        print(f"{paths.shown(path)}: readable by others ({mode})")
    holders = len({finding.path for finding in findings})
    print(
        f"{len(secrets)} secret(s) of {len(profiles)} profile(s) looked for under "
        f"{paths.shown(root)}: {holders} file(s) hold one, {len(exposed)} readable by others"
    )
    if findings:
        return int(Status.CRITICAL)
    if unread or not_loaded:  # part of the archive, or of the secrets, was not looked at
        return int(Status.UNKNOWN)
    return int(Status.WARNING if exposed else Status.OK)


def register(commands: argparse._SubParsersAction) -> None:
    """Add `history`, `show`, `index`, `archive prune` and `archive scan` to the CLI."""
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
    history.add_argument("--reports", type=Path, help=REPORTS_HELP)
    history.set_defaults(handler=_cmd_history)

    archive = commands.add_parser("archive", help="archive upkeep")
    # its subcommands fail the way the parser the CLI made for `archive` does
    archive_commands = archive.add_subparsers(
        dest="archive_command", required=True, parser_class=type(archive)
    )
    prune = archive_commands.add_parser(
        "prune", help="apply the retention policy (parameters/retention.yaml), as a plan first"
    )
    prune.add_argument("--policy", type=Path, help="another retention policy file")
    prune.add_argument("--apply", action="store_true", help="carry out the plan shown")
    prune.add_argument("--approve", default="", metavar="HASH", help="apply only this plan")
    prune.add_argument("--by", default="", help="who asked for it, for the audit trail")
    prune.add_argument("--reports", type=Path, help=REPORTS_HELP)
    prune.set_defaults(handler=_cmd_prune)

    scan = archive_commands.add_parser(
        "scan", help="look for the profiles' secrets and for files others can read"
    )
    scan.add_argument(
        "--profile", action="append", help="only this profile (repeatable; default: all)"
    )
    scan.add_argument("--reports", type=Path, help=REPORTS_HELP)
    scan.set_defaults(handler=_cmd_scan)

    show = commands.add_parser("show", help="one run's checks, by its id (or a unique prefix)")
    show.add_argument("run_id")
    show.add_argument("--reports", type=Path, help=REPORTS_HELP)
    show.set_defaults(handler=_cmd_show)

    index = commands.add_parser("index", help="rebuild reports/index.html from the ledger")
    index.add_argument("--reports", type=Path, help=REPORTS_HELP)
    index.set_defaults(handler=_cmd_index)
