"""What a runbook notebook says about itself, for `opslib list`."""

from __future__ import annotations

import json
from pathlib import Path

# The scrapbook name a runbook records its check results under, for the runner to read.
RESULTS_SCRAP = "opslib_results"


def purpose(notebook: Path) -> str:
    """The first plain line of the notebook's first markdown cell."""
    cells = json.loads(notebook.read_text(encoding="utf-8")).get("cells", [])
    for cell in cells:
        if cell.get("cell_type") != "markdown":
            continue
        for line in "".join(cell.get("source", [])).splitlines():
            if line.strip() and not line.lstrip().startswith("#"):
                return line.strip()
    return ""
