"""The HTML report: code hidden, a status banner on top, nothing fetched from the web.

scrapbook's recorded results are display outputs nbconvert cannot render (it warns for
each); they stay in the archived notebook for `scrapbook.read_notebook` and are dropped
from the HTML by `DropScraps`.
"""

from __future__ import annotations

import copy
import functools
import json
import re
from dataclasses import asdict, dataclass, field
from html import escape
from pathlib import Path
from typing import Any

import nbformat
from nbconvert import HTMLExporter
from nbconvert.preprocessors import Preprocessor

from opslib.archive.index import COLOURS
from opslib.notebooks import NOT_APPLICABLE_MIME, TRACEBACK_MIME

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


class DropNotApplicable(Preprocessor):
    """Remove the steps that did not apply to the profile (the facade marks them) and the
    explanation above them when every step it explains was removed: a reviewer reads what
    was measured, and the report's last line names what did not apply."""

    def preprocess(self, nb, resources):  # type: ignore[no-untyped-def]
        kept, section = [], []  # `section`: a markdown cell and the code cells after it
        for cell in [*nb.cells, None]:
            if cell is None or cell.cell_type == "markdown":
                kept += _section(section)
                section = []
            if cell is not None:
                section.append(cell)
        nb.cells = kept
        return nb, resources


def _marker(output: Any) -> bool:
    return NOT_APPLICABLE_MIME in output.get("data", {})


def _substantive(output: Any) -> bool:
    """What a reviewer reads as a result: a finding, a table, a chart or an error. Printed
    lines ("no rows to chart") only follow from what the section measured."""
    kind = output.get("output_type")
    return kind == "error" or (kind in ("display_data", "execute_result") and not _marker(output))


def _not_applicable(cell: Any) -> bool:
    outputs = cell.get("outputs", [])
    return bool(outputs) and all(map(_marker, outputs))


def _section(cells: list[Any]) -> list[Any]:
    """The section without its not-applicable steps, or nothing when a step did not apply
    and nothing else in it shows a result."""
    outputs = [out for cell in cells if cell.cell_type == "code" for out in cell.get("outputs", [])]
    if any(map(_marker, outputs)) and not any(map(_substantive, outputs)):
        return []
    return [cell for cell in cells if not (cell.cell_type == "code" and _not_applicable(cell))]


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
PAPERMILL_ERROR_TAG = "papermill-error-cell-tag"  # papermill's red "An Exception..." cells


class CollapseErrors(Preprocessor):
    """No traceback in a reviewer's face: a cell that raised shows one line (what raised,
    and that the step stopped), papermill's red banners go, and the tracebacks, with those
    of the errors a step caught (the facade shows them where they happened), sit folded at
    the end of the report for whoever files the bug."""

    def preprocess(self, nb, resources):  # type: ignore[no-untyped-def]
        tracebacks = []
        nb.cells = [c for c in nb.cells if PAPERMILL_ERROR_TAG not in c.metadata.get("tags", [])]
        for cell in nb.cells:
            if cell.cell_type != "code":
                continue
            kept = []
            for output in cell.outputs:
                if TRACEBACK_MIME in output.get("data", {}):
                    tracebacks.append(output.data[TRACEBACK_MIME]["traceback"])
                    continue
                if output.output_type == "error":
                    line = f"{output.ename}: {output.evalue}"
                    tracebacks.append(_ANSI.sub("", "\n".join(output.traceback)))
                    output = _html(
                        f'<p class="opslib-cell-error"><b>UNKNOWN</b> — this step stopped: '
                        f"{escape(line)}</p>"
                    )
                kept.append(output)
            cell.outputs = kept
        if tracebacks:
            body = escape("\n\n".join(tracebacks))
            folded = nbformat.v4.new_code_cell(outputs=[_html(
                f"<details><summary>Details for a bug report ({len(tracebacks)} traceback(s))"
                f"</summary><pre>{body}</pre></details>"
            )])  # fmt: skip
            nb.cells.append(folded)
        return nb, resources


def _html(markup: str) -> Any:
    return nbformat.v4.new_output("display_data", data={"text/html": markup})


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
    exporter.register_preprocessor(DropNotApplicable(), enabled=True)
    exporter.register_preprocessor(CollapseErrors(), enabled=True)
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
    resources = {"opslib": facts, "opslib_colours": COLOURS}
    body, _ = _exporter().from_notebook_node(copy.deepcopy(nb), resources=resources)
    return body
