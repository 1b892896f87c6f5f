"""The HTML report: code hidden, a status banner on top, nothing fetched from the web.

scrapbook's recorded results are display outputs nbconvert cannot render (it warns for
each); they stay in the archived notebook for `scrapbook.read_notebook` and are dropped
from the HTML by `DropScraps`.
"""

from __future__ import annotations

import copy
import functools
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import nbformat
from nbconvert import HTMLExporter
from nbconvert.preprocessors import Preprocessor

TEMPLATES = Path(__file__).with_name("templates")
SCRAP_MIMETYPE_PREFIX = "application/scrapbook.scrap."


class DropScraps(Preprocessor):
    """Remove scrapbook's machine-readable outputs, which have no visual form."""

    def preprocess_cell(self, cell, resources, index):  # type: ignore[no-untyped-def]
        if cell.cell_type == "code":
            cell.outputs = [
                output
                for output in cell.outputs
                if not any(key.startswith(SCRAP_MIMETYPE_PREFIX) for key in output.get("data", {}))
            ]
        return cell, resources


@functools.cache
def _exporter() -> HTMLExporter:
    exporter = HTMLExporter(
        template_name="opslib_report",
        extra_template_basedirs=[str(TEMPLATES)],
        exclude_input=True,
        exclude_input_prompt=True,
        exclude_output_prompt=True,
    )
    exporter.register_preprocessor(DropScraps(), enabled=True)
    return exporter


@dataclass
class Banner:
    """The run facts shown above the notebook: status, what needs attention, who, when."""

    status: str = "OK"
    runbook: str = ""
    profile: str = ""
    headline: str = ""
    attention: list[dict[str, Any]] = field(default_factory=list)
    started: str = ""
    duration_s: float = 0.0
    run_id: str = ""
    who: str = ""
    host: str = ""
    git_sha: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)


def prepare_exporter() -> None:
    """Render an empty notebook once, ahead of use: it loads the templates and compiles
    the CSS selectors nbconvert's post-processing uses, ~0.3 s the runner spends on its
    second core while the kernel runs instead of after it."""
    render_html(nbformat.v4.new_notebook(), Banner())


def render_html(nb: nbformat.NotebookNode, banner: Banner) -> str:
    """The report page for an executed notebook and the run facts in `banner`."""
    facts = {**asdict(banner), "parameters": json.dumps(banner.parameters, sort_keys=True)}
    body, _ = _exporter().from_notebook_node(copy.deepcopy(nb), resources={"opslib": facts})
    return body
