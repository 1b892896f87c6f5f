"""A pipeline's manual as a page: its symptoms, each with the runbook to open, that
runbook's latest state and report and when it is scheduled, then the escalation levels and
the quick commands (the profile's `manual:` and `severity:` sections).

`opslib manual PROFILE` prints it; `--html` writes `manual-PROFILE.html` beside the status
board, which links it from that profile's rows. The schedule sits above the archive, so the
command hands each entry's cron and next run down as `Scheduled`, the way a run hands its
`History` to a probe.
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import humanfriendly
import jinja2

from opslib import paths
from opslib.archive.index import COLOURS, PAGE_PREFIX, write_index
from opslib.archive.ledger import Ledger, ledger_exists
from opslib.clock import utc_now
from opslib.errors import OpslibError, RunbookError
from opslib.notebooks import applies, find_runbook
from opslib.profiles import Profile
from opslib.profiles.manual import Manual

WIDTH = 100  # columns of the printed page
COUNTED = re.compile(r"^Counted:\s*(?P<figures>.+?)\s*$", re.MULTILINE)


@dataclass(frozen=True)
class Scheduled:
    """One schedule entry of a runbook on the profile, as the schedule hands it down."""

    runbook: str
    cron: str
    next_run: datetime | None


@dataclass
class Symptom:
    """What the manual calls a problem, the runbook to open, and what is known of it."""

    words: str
    runbook: str
    problem: str = ""  # why the runbook cannot be opened on this profile
    latest: dict | None = None  # the newest ledger row of runbook × profile
    schedule: list[Scheduled] | None = field(default_factory=list)  # None: not read


@dataclass
class Page:
    profile: str
    source: str
    coverage: str | None
    figures: str  # the coverage map's Counted line, or why there is none
    symptoms: list[Symptom]
    severity: dict[str, list[str]]
    commands: dict[str, str]
    generated: datetime
    unscheduled: str = ""  # why the schedule could not be read


def manual_of(profile: Profile) -> Manual:
    if profile.manual is None:
        raise OpslibError(
            f"profile {profile.name} has no manual: section (see opslib/profiles/manual.py)"
        )
    return profile.manual


def coverage_figures(coverage: str | None) -> str:
    """The coverage map's `Counted:` figures, or why they cannot be shown."""
    if not coverage:
        return "no coverage map named (manual.coverage)"
    path = paths.resolve_path(coverage)
    try:
        found = COUNTED.search(path.read_text(encoding="utf-8"))
    except OSError as exc:
        return f"coverage map {coverage} not readable ({exc.strerror or type(exc).__name__})"
    return found["figures"].rstrip(".") if found else f"{coverage} has no Counted: line"


def build_page(
    profile: Profile, schedule: list[Scheduled] | str, ledger: Ledger | None = None
) -> Page:
    """The page of `profile` (which must have a manual), its runbooks' latest runs read from
    the ledger (none when there is no ledger yet) and `schedule` the entries on it (or why
    the schedule could not be read)."""
    manual = manual_of(profile)
    if ledger is None and ledger_exists():
        ledger = Ledger()
    symptoms = []
    for words, runbook in manual.symptoms.items():
        entries = (
            None if isinstance(schedule, str) else [s for s in schedule if s.runbook == runbook]
        )
        symptom = Symptom(words, runbook, schedule=entries)
        try:
            if not applies(find_runbook(runbook), profile):
                symptom.problem = f"does not apply to profile {profile.name}"
        except RunbookError:
            symptom.problem = "no such runbook under notebooks/"
        if ledger is not None:
            newest = ledger.history(runbook, profile.name, limit=1)
            symptom.latest = newest[0] if newest else None
        symptoms.append(symptom)
    return Page(
        profile.name,
        manual.source,
        manual.coverage,
        coverage_figures(manual.coverage),
        symptoms,
        dict(profile.severity),
        dict(manual.commands),
        utc_now(),
        schedule if isinstance(schedule, str) else "",
    )


def ago(moment: datetime, now: datetime) -> str:
    seconds = round(max((now - moment).total_seconds(), 0))
    return humanfriendly.format_timespan(seconds, max_units=1)


def state(symptom: Symptom, now: datetime) -> str:
    """`WARNING 2026-12-03 19:00 UTC (2 hours ago): summary`, or `not run yet`."""
    run = symptom.latest
    return "not run yet" if run is None else f"{run['status']} {when(run, now)}"


def when(run: dict, now: datetime) -> str:
    """`2026-12-03 19:00 UTC (2 hours ago): summary` of a ledger row."""
    moment = f"{run['started_at']:%Y-%m-%d %H:%M} UTC ({ago(run['started_at'], now)} ago)"
    return moment + (f": {run['summary']}" if run["summary"] else "")


def schedule_text(entries: list[Scheduled] | None) -> str:
    if entries is None:
        return "unknown: the schedule could not be read"
    if not entries:
        return "not scheduled (parameters/schedule.yaml)"
    return "; ".join(
        f"cron {entry.cron}, next "
        + (f"{entry.next_run:%Y-%m-%d %H:%M} UTC" if entry.next_run else "never")
        for entry in entries
    )


def _wrapped(text: str, indent: str, hang: str = "    ") -> list[str]:
    return textwrap.wrap(
        text, WIDTH, initial_indent=indent, subsequent_indent=indent + hang, break_on_hyphens=False
    ) or [indent.rstrip()]


def text_lines(page: Page) -> list[str]:
    """The page as plain text, no line over WIDTH columns."""
    now = page.generated
    lines = _wrapped(f"The {page.source} manual, as opslib runs it on profile {page.profile}", "")
    lines += _wrapped(f"Coverage ({page.coverage or 'no map'}): {page.figures}", "")
    if page.unscheduled:
        lines += _wrapped(f"Schedule not read: {page.unscheduled}", "")
    lines += ["", "Symptoms: what the manual calls a problem, and the runbook to open"]
    for symptom in page.symptoms:
        lines += _wrapped(symptom.words, "  ")
        opened = f"opslib run {symptom.runbook} --profile {page.profile}"
        lines += _wrapped(f"runbook   {opened}", "    ", " " * 10)
        if symptom.problem:
            lines += _wrapped(f"          ({symptom.problem})", "    ", " " * 10)
        lines += _wrapped(f"latest    {state(symptom, now)}", "    ", " " * 10)
        if symptom.latest and symptom.latest.get("html_path"):
            report = paths.shown(paths.reports_dir() / symptom.latest["html_path"])
            lines += _wrapped(f"report    {report}", "    ", " " * 10)
        lines += _wrapped(f"schedule  {schedule_text(symptom.schedule)}", "    ", " " * 10)
    lines += ["", "Escalation levels: the first level a run's results match"]
    for level, conditions in page.severity.items():
        lines += _wrapped(f"{level}  {', '.join(conditions)}", "  ", "    ")
    if not page.severity:
        lines.append("  none: the profile has no severity: section")
    lines += ["", "Quick commands: the manual's aliases"]
    width = min(max((len(alias) for alias in page.commands), default=0), 24)
    for alias, command in page.commands.items():
        lines += _wrapped(f"{alias.ljust(width)}  {command}", "  ", " " * (width + 2))
    if not page.commands:
        lines.append("  none: the manual: section lists no commands")
    return lines


def page_path(profile: str) -> Path:
    """Where the HTML page of `profile` is written: beside the status board."""
    return paths.reports_dir() / f"{PAGE_PREFIX}{profile}.html"


def write_page(page: Page) -> Path:
    """Render the page as HTML and swap it in beside the board (owner-only, like the
    rest of the archive: the process umask decides)."""
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).with_name("templates")), autoescape=True
    )
    environment.filters["when"] = lambda run: when(run, page.generated)
    environment.filters["schedule"] = schedule_text
    html = environment.get_template("manual.html.j2").render(page=page, colours=COLOURS)
    written = paths.write_atomically(page_path(page.profile), html)
    if ledger_exists():  # the board links the page from now on
        write_index(Ledger())
    return written
