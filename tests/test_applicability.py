"""A runbook applies to a profile when some step of it can run there: refused in one line
when none can, and, when some cannot, those steps leave no result and no paragraph, only
their names in the report's last line."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import nbformat
import pytest
from IPython.core.formatters import DisplayFormatter
from support import Workspace
from test_cli_errors import assert_one_line_refusal

from opslib.archive.html import DropNotApplicable
from opslib.errors import RunbookError
from opslib.notebooks import NOT_APPLICABLE_MIME, applies, what_for
from opslib.profiles import load_profile
from opslib.runbook import Finding
from opslib.runbook.service_state import Reading, ServiceState


@pytest.mark.parametrize(
    ("runbook", "profile", "needs"),
    [
        ("gpu-memory", "demo", "gpu"),
        ("backup", "catalog", "backups or redis_backups"),
        ("emergency-halt", "catalog", "halt"),
        ("restore", "demo", "backups or postgres_backups or redis_backups or sqlite_backups"),
        ("budget-status", "demo", "budget"),
        ("gpu-memory", "ideas", "gpu"),
    ],
)
def test_a_runbook_for_something_the_profile_lacks_is_refused(
    workspace: Workspace, runbook: str, profile: str, needs: str
) -> None:
    """Once these ran, found nothing to check and exited 0 OK."""
    workspace.env["IDEAS_DSN"] = "postgresql://ideas@127.0.0.1:1/ideas"  # never reached
    result = workspace.opslib("run", runbook, "--profile", profile)
    assert_one_line_refusal(
        result, f"{runbook} does not apply to profile {profile}", f"need {needs};", "apply:"
    )
    assert not workspace.reports.exists(), "a refused run leaves nothing in the archive"


def test_list_shows_where_each_runbook_applies_and_filters_by_profile(
    workspace: Workspace,
) -> None:
    every = workspace.opslib("list")
    assert every.returncode == 0
    blocks = dict(re.findall(r"^(\S+) .*\n.*\n\s+applies to: (.*)$", every.stdout, re.M))
    assert (
        blocks["backup"] == "ideas, spots, video" and blocks["gpu-memory"] == "no shipped profile"
    )
    assert "demo" in blocks["morning-check"].split(", ")
    catalog = workspace.opslib("list", "--profile", "catalog")
    names = re.findall(r"^(\S+) ", catalog.stdout, re.M)
    assert "high-error-rate" in names and "backup" not in names and "gpu-memory" not in names


def test_steps_that_do_not_apply_are_one_line_at_the_end_of_the_report(
    workspace: Workspace,
) -> None:
    result = workspace.opslib("run", "morning-check")
    (page,) = [p for p in workspace.archive_files() if p.suffix == ".html"]
    html = page.read_text()
    assert result.returncode == 1, result.stdout + result.stderr
    line = re.search(r"Not applicable to profile demo: ([^<]*)", html).group(1)
    assert "pg_connections" in line and "(no postgres)" in line and "gpu_memory" in line
    # the PostgreSQL section, all of whose steps do not apply, is gone with its explanation
    assert "Server sessions (PostgreSQL)" not in html and "<b>pg_connections</b>" not in html
    assert "1. The database answers" in html and "<b>database_reachable</b>" in html
    # no per-step line either (the process table may name anything, so look for the line's shape)
    assert ": not applicable (" not in html


def _notebook(path: Path, code: list[str], metadata: dict | None = None) -> Path:
    book = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(cell) for cell in code])
    book.metadata.update(metadata or {})
    nbformat.write(book, path)
    return path


def test_an_action_is_what_a_runbook_is_for(tmp_path: Path) -> None:
    """Its checks only ask whether the database answers: the backup it takes is the point,
    so a profile with nowhere to put backups is not one it applies to."""
    notebook = _notebook(
        tmp_path / "nightly-backup.ipynb",
        [
            "from opslib.actions.backup import TakeBackup",
            'rb.evaluate("database_reachable")\nrb.act(TakeBackup(rb.profile), apply=apply)',
        ],
    )
    assert what_for(notebook) == {"backups"}
    assert applies(notebook, load_profile("spots"))
    assert not applies(notebook, load_profile("catalog"))


def test_a_runbook_may_say_what_it_is_for_in_its_metadata(tmp_path: Path) -> None:
    """The halt here only reacts to a queue check: the runbook is for the halt flag."""
    code = [
        "from opslib.actions.halt import SetHalt",
        'rb.evaluate("queue_depth")\nrb.act(SetHalt(rb.profile, halt=True, reason="r"))',
    ]
    reacting = _notebook(tmp_path / "a.ipynb", code)
    declared = _notebook(tmp_path / "b.ipynb", code, {"opslib": {"applies_to": ["halt"]}})
    assert what_for(reacting) == {"queue", "halt"} and what_for(declared) == {"halt"}
    demo = load_profile("demo")
    assert demo.provides("queue") and not demo.provides("halt")
    assert applies(reacting, demo) and not applies(declared, demo)


def _output(kind: str, **data: Any) -> nbformat.NotebookNode:
    if kind == "stream":
        return nbformat.v4.new_output("stream", name="stdout", text=data["text"])
    return nbformat.v4.new_output(kind, data=data)


def test_a_section_whose_step_did_not_apply_goes_even_with_lines_printed_after_it() -> None:
    """The lines a section prints follow from its step ("no rows to chart"); the section
    that measured something keeps its explanation and result, without the marker."""
    marker = {NOT_APPLICABLE_MIME: {"step": "s"}, "text/plain": "s: not applicable"}
    book = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_markdown_cell("## Budget"),
            nbformat.v4.new_code_cell(outputs=[_output("display_data", **marker)]),
            nbformat.v4.new_code_cell(outputs=[_output("stream", text="no rows to chart\n")]),
            nbformat.v4.new_markdown_cell("## Queue"),
            nbformat.v4.new_code_cell(outputs=[_output("display_data", **marker)]),
            nbformat.v4.new_code_cell(
                outputs=[_output("display_data", **{"text/html": "<p>OK depth</p>"})]
            ),
        ]
    )
    kept, _ = DropNotApplicable().preprocess(book, {})
    assert [cell.source for cell in kept.cells] == ["## Queue", ""]
    assert kept.cells[1].outputs[0].data["text/html"] == "<p>OK depth</p>"


@pytest.mark.parametrize(
    "shown",
    [
        Finding("budget_usage", skipped="no budget"),
        Reading(ServiceState.UNKNOWN, "no budget", False),
    ],
)
def test_what_did_not_apply_reads_as_a_plain_line_in_jupyterlab(shown: object) -> None:
    """An empty HTML part would win over the plain line and show a blank output."""
    data, _ = DisplayFormatter().format(shown)
    assert "text/html" not in data and NOT_APPLICABLE_MIME in data
    assert "not applicable (no budget)" in data["text/plain"]


def test_an_action_imported_under_another_name_beside_a_magic_still_counts(
    tmp_path: Path,
) -> None:
    notebook = _notebook(
        tmp_path / "halt.ipynb",
        [
            "%matplotlib inline\nfrom opslib.actions.halt import SetHalt as Halt\nrb.act(Halt(rb.profile))"
        ],
    )
    assert what_for(notebook) == {"halt"}


@pytest.mark.parametrize("declared", ["halt", ["halts"], []])
def test_metadata_that_names_no_known_need_is_one_line_naming_the_notebook(
    tmp_path: Path, declared: object
) -> None:
    notebook = _notebook(tmp_path / "odd.ipynb", ["pass"], {"opslib": {"applies_to": declared}})
    with pytest.raises(RunbookError, match=r"odd.ipynb: metadata opslib.applies_to must be a list"):
        applies(notebook, load_profile("demo"))
