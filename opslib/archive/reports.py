"""Report files in the archive: `reports/YYYY/MM/DD/<runbook>--<profile>--<HHMMSS>`, an
executed notebook and its HTML, never half-written and never overwriting another run's."""

from __future__ import annotations

import os
import socket
from datetime import datetime
from pathlib import Path


def report_stem(runbook: str, profile: str, started: datetime) -> Path:
    """`YYYY/MM/DD/<runbook>--<profile>--<HHMMSS>` relative to the reports dir."""
    return (
        Path(started.strftime("%Y/%m/%d")) / f"{runbook}--{profile}--{started.strftime('%H%M%S')}"
    )


def write_report(
    reports: Path, stem: Path, run_id: str, notebook: str, html: str
) -> tuple[Path, Path]:
    """Write the executed notebook and its HTML under `reports/<stem>.{ipynb,html}`.

    Both are written in full under a temp name in `reports/.tmp` and only then linked or
    renamed into place, so a reader (or a `kill -9`) never meets half a report.
    """
    temp_dir = reports / ".tmp"
    temp_dir.mkdir(parents=True, exist_ok=True)
    _sweep_temp(temp_dir)
    prefix = f"{socket.gethostname()}-{os.getpid()}-{run_id}"
    notebook_temp = temp_dir / f"{prefix}.ipynb.part"
    html_temp = temp_dir / f"{prefix}.html.part"
    notebook_path: Path | None = None
    try:
        notebook_temp.write_text(notebook, encoding="utf-8")
        html_temp.write_text(html, encoding="utf-8")
        notebook_path = link_unique(notebook_temp, reports / stem, ".ipynb")
        html_path = notebook_path.with_suffix(".html")
        os.replace(html_temp, html_path)
    except BaseException:
        # a full disk or a read-only archive: no half of a report stays behind
        if notebook_path is not None:
            notebook_path.unlink(missing_ok=True)
        raise
    finally:
        notebook_temp.unlink(missing_ok=True)
        html_temp.unlink(missing_ok=True)
    return notebook_path, html_path


def _sweep_temp(temp_dir: Path) -> None:
    """Remove temp files this host's dead runs left behind (a `kill -9` does). Files of
    other hosts sharing the archive are theirs to sweep."""
    host = socket.gethostname()
    for stale in temp_dir.glob(f"{host}-*.part"):
        pid = stale.name.removeprefix(f"{host}-").split("-", 1)[0]
        if not pid.isdigit():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            stale.unlink(missing_ok=True)
        except PermissionError:
            pass


def link_unique(source: Path, stem: Path, suffix: str) -> Path:
    """Hard-link `source` to `stem + suffix`, adding -2, -3 … if taken; atomic, never
    overwrites, so two runs finishing in the same second both keep their report."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    for attempt in range(1, 1000):
        target = stem.with_name(stem.name + (f"-{attempt}" if attempt > 1 else "") + suffix)
        try:
            os.link(source, target)
        except FileExistsError:
            continue
        return target
    raise RuntimeError(f"cannot find a free report name for {stem}")
