"""`reports/index.html`: latest status per runbook × profile and the recent runs."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import jinja2

from opslib import paths
from opslib.archive import Ledger

RECENT_RUNS = 50


def write_index(ledger: Ledger | None = None) -> Path:
    """Render the index from the ledger alone and swap it in atomically."""
    ledger = ledger or Ledger()
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).with_name("templates")),
        autoescape=True,
    )
    page = environment.get_template("archive_index.html.j2").render(
        generated=datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S"),
        latest=ledger.latest(),
        recent=ledger.history(limit=RECENT_RUNS),
    )
    target = paths.reports_dir() / "index.html"
    temporary = target.with_name(f".index.{os.getpid()}.part")
    temporary.write_text(page, encoding="utf-8")
    os.replace(temporary, target)
    return target
