"""`reports/index.html`: what is red right now and since when, each runbook × profile's
recent history as a strip of runs, trend lines of its check values, and the recent runs,
every one linked to its report.

The page is self-contained (inline CSS, charts as inline SVG, nothing loaded from the
web), so it opens offline and from a copied archive. It is rendered from the ledger alone
and swapped in atomically.
"""

from __future__ import annotations

import math
import os
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import humanfriendly
import jinja2
from markupsafe import Markup

from opslib import paths
from opslib.archive.ledger import Ledger
from opslib.clock import utc_now
from opslib.status import Status

RECENT_RUNS = 50
STRIP_RUNS = 30  # runs per history strip
TRENDS_PER_ROW = 6  # trend lines per runbook × profile, problems first
COLOURS = {status.name: status.colour for status in Status}
PAGE_PREFIX = "manual-"  # a pipeline's manual page beside the board (archive/manual.py)


@dataclass
class Trend:
    check: str
    unit: str
    values: list[float]
    status: str  # of the newest value

    def svg(self, width: int = 120, height: int = 26) -> Markup:
        """A sparkline: the values oldest to newest, the newest dot in its status colour."""
        low, high = min(self.values), max(self.values)
        span = (high - low) or 1.0
        step = width / max(len(self.values) - 1, 1)
        points = [
            (round(index * step, 1), round(height - 3 - (value - low) / span * (height - 6), 1))
            for index, value in enumerate(self.values)
        ]
        line = " ".join(f"{x},{y}" for x, y in points)
        x, y = points[-1]
        title = f"{self.check}: last {self.values[-1]:g} {self.unit}, range {low:g} to {high:g}"
        return Markup(
            f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img">'
            f"<title>{Markup.escape(title)}</title>"
            f'<polyline fill="none" stroke="#1565c0" stroke-width="1.3" points="{line}"/>'
            f'<circle cx="{x}" cy="{y}" r="2.6" fill="{COLOURS[self.status]}"/></svg>'
        )


@dataclass
class BoardRow:
    """One runbook × profile: its newest run, since when it has had that status, its
    recent runs oldest first, and its trend lines."""

    latest: dict
    since: datetime | None
    strip: list[dict]
    trends: list[Trend] = field(default_factory=list)


def _ago(moment: datetime | None, now: datetime) -> str:
    if moment is None:
        return ""
    return humanfriendly.format_timespan(round(max((now - moment).total_seconds(), 0)), max_units=1)


def _trends(runs: list[dict], values: list[dict]) -> list[Trend]:
    """Trend lines of the checks with at least two values in these runs (oldest first),
    the checks that were ever not OK first."""
    order = {run["run_id"]: index for index, run in enumerate(runs)}
    series: dict[str, list[tuple[int, dict]]] = defaultdict(list)
    for row in values:
        if row["run_id"] in order and math.isfinite(row["value"]):
            series[row["name"]].append((order[row["run_id"]], row))
    trends = []
    for check, points in series.items():
        if len(points) < 2:
            continue
        points.sort(key=lambda point: point[0])
        rows = [row for _, row in points]
        trends.append(
            Trend(check, rows[-1]["unit"] or "", [r["value"] for r in rows], rows[-1]["status"])
        )
    troubled = {row["name"] for row in values if row["status"] != "OK"}
    trends.sort(key=lambda trend: (trend.check not in troubled, trend.check))
    return trends[:TRENDS_PER_ROW]


def board(ledger: Ledger) -> list[BoardRow]:
    """The status board, worst status first."""
    newest = ledger.newest_per_group(STRIP_RUNS)
    groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for run in newest:
        groups[(run["runbook"], run["profile"])].append(run)
    values_by_run = defaultdict(list)
    for row in ledger.values([run["run_id"] for run in newest]):
        values_by_run[row["run_id"]].append(row)
    rows = []
    for (runbook, profile), runs in groups.items():
        latest = runs[0]
        oldest_first = list(reversed(runs))
        values = [value for run in oldest_first for value in values_by_run[run["run_id"]]]
        rows.append(
            BoardRow(
                latest,
                ledger.status_since(runbook, profile, latest["status"]),
                oldest_first,
                _trends(oldest_first, values),
            )
        )
    rows.sort(key=lambda row: (-Status[row.latest["status"]].severity, row.latest["runbook"]))
    return rows


def manual_pages() -> set[str]:
    """The profiles whose manual page (`opslib manual PROFILE --html`) is in the archive."""
    pages = paths.reports_dir().glob(f"{PAGE_PREFIX}*.html")
    return {page.name[len(PAGE_PREFIX) : -len(".html")] for page in pages}


def write_index(ledger: Ledger | None = None) -> Path:
    """Render the index from the ledger alone and swap it in atomically."""
    ledger = ledger or Ledger()
    now = utc_now()
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).with_name("templates")),
        autoescape=True,
    )
    environment.filters["ago"] = lambda moment: _ago(moment, now)
    page = environment.get_template("archive_index.html.j2").render(
        generated=now.strftime("%Y-%m-%d %H:%M:%S"),
        board=board(ledger),
        recent=ledger.history(limit=RECENT_RUNS),
        colours=COLOURS,
        manuals=manual_pages(),
        page_prefix=PAGE_PREFIX,
    )
    target = paths.reports_dir() / "index.html"
    temporary = target.with_name(f".index.{os.getpid()}.part")
    temporary.write_text(page, encoding="utf-8")
    os.replace(temporary, target)
    return target
