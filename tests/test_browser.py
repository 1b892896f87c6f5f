"""What a reviewer sees: a morning-check report and the archive index rendered by a real
headless Chromium (no network), checked for a page that is not blank and a banner in
the colour of the run's status."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread
from support import Workspace

from opslib.status import Status


def _screenshot(page: Path, target: Path, profile_dir: Path) -> np.ndarray:
    """The page as Chromium draws it, as an RGB array (0..1)."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.fail("chromium is not installed: `make test` installs it with apt", pytrace=False)
    subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         f"--user-data-dir={profile_dir}", "--window-size=1200,900",
         f"--screenshot={target}", page.as_uri()],
        check=True, capture_output=True, timeout=90,
    )  # fmt: skip
    return imread(target)[:, :, :3]


def _rgb(status: Status) -> np.ndarray:
    colour = status.colour.lstrip("#")
    return np.array([int(colour[i : i + 2], 16) / 255 for i in (0, 2, 4)])


def _share_of(image: np.ndarray, colour: np.ndarray) -> float:
    return float((np.abs(image - colour).max(axis=2) < 0.03).mean())


def test_a_report_and_the_index_render_with_the_status_colour(
    workspace: Workspace, tmp_path: Path
) -> None:
    result = workspace.opslib("run", "morning-check")
    assert result.returncode == 1, result.stdout + result.stderr  # the demo is a WARNING
    (report,) = [path for path in workspace.archive_files() if path.suffix == ".html"]
    image = _screenshot(report, tmp_path / "report.png", tmp_path / "chromium")
    assert image.std() > 0.05 and (image.mean(axis=2) < 0.9).mean() > 0.02  # not blank
    banner = image[5:60, 5:1100]
    assert _share_of(banner, _rgb(Status.WARNING)) > 0.5  # the banner is WARNING's colour
    assert _share_of(banner, _rgb(Status.CRITICAL)) < 0.01

    index = _screenshot(workspace.reports / "index.html", tmp_path / "index.png", tmp_path / "c2")
    assert index.std() > 0.05
    assert _share_of(index, _rgb(Status.WARNING)) > 0.0005  # the board's WARNING badge
    page = (workspace.reports / "index.html").read_text()
    link = report.relative_to(workspace.reports).as_posix()
    assert f'href="{link}"' in page  # the board links the report it shows
