"""The notebooks themselves: stored clean, parameterized, and runnable top to bottom."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from support import PROJECT, Workspace

NOTEBOOKS = sorted((PROJECT / "notebooks").rglob("*.ipynb"))


def test_there_are_runbooks_to_check() -> None:
    assert {path.stem for path in NOTEBOOKS} >= {"morning-check", "stuck-pipeline"}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_stored_without_outputs(path: Path) -> None:
    cells = json.loads(path.read_text())["cells"]
    dirty = [
        i
        for i, c in enumerate(cells)
        if c["cell_type"] == "code" and (c.get("outputs") or c.get("execution_count"))
    ]
    assert dirty == [], (
        f"{path.relative_to(PROJECT)}: cells {dirty} carry outputs; strip them before committing"
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_has_a_parameters_cell_with_a_profile_first(path: Path) -> None:
    cells = json.loads(path.read_text())["cells"]
    code = [c for c in cells if c["cell_type"] == "code"]
    assert code and "parameters" in code[0]["metadata"].get("tags", []), (
        "first code cell must be tagged parameters"
    )
    assert "".join(code[0]["source"]).startswith("profile: str = "), (
        "parameters start with `profile: str = ...`"
    )
    assert json.loads(path.read_text())["metadata"]["kernelspec"]["name"] == "opslib"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_starts_with_a_title_and_a_purpose(path: Path) -> None:
    first = json.loads(path.read_text())["cells"][0]
    assert first["cell_type"] == "markdown" and "".join(first["source"]).startswith("# ")


def test_nbval_runs_every_notebook_with_defaults_on_the_demo(workspace: Workspace) -> None:
    """What an engineer gets opening each notebook in JupyterLab and running it all."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--nbval-lax",
            "-p",
            "no:cacheprovider",
            "-q",
            str(PROJECT / "notebooks"),
        ],
        env=workspace.env,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=workspace.root,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    code_cells = sum(
        1
        for path in NOTEBOOKS
        for c in json.loads(path.read_text())["cells"]
        if c["cell_type"] == "code"
    )
    assert f"{code_cells} passed" in result.stdout
