"""`opslib profile check` reads the profile's mapping against the live database, and a
run meets a wrong mapping as the profile's mistake: one line naming the key, never "the
database did not answer", never spilling into the checks that do not use it."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from support import PROJECT, Workspace


def _demo_profile(workspace: Workspace, **queue: object) -> Path:
    """The demo profile with parts of its queue mapping replaced."""
    data = yaml.safe_load((PROJECT / "parameters" / "profiles" / "demo.yaml").read_text())
    for key, value in queue.items():
        section, _, field = key.partition("__")
        target = data["queue"].setdefault(section, {}) if field else data["queue"]
        target[field or section] = value
    path = workspace.root / "mapped.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize(
    ("change", "exit_code", "line"),
    [
        (
            {"columns__status": "stat"},
            3,
            "UNKNOWN queue_mapping[status]: queue.columns.status: jobs has no column 'stat' "
            "(did you mean status?)",
        ),
        (
            {"statuses__failed": "errored"},
            1,
            "WARNING queue_mapping[statuses]: queue.statuses: value(s) 'failed' belong to no "
            "role and are counted nowhere",
        ),
        (
            {"timestamps": "epoch_s"},
            3,
            "UNKNOWN queue_mapping[created_at]: queue.columns.created_at is declared epoch_s, "
            "but the column holds iso values",
        ),
    ],
)
def test_profile_check_reads_the_mapping_against_the_database(
    workspace: Workspace, change: dict, exit_code: int, line: str
) -> None:
    result = workspace.opslib("profile", "check", str(_demo_profile(workspace, **change)))
    assert result.returncode == exit_code, result.stdout + result.stderr
    lines = [" ".join(row.split()) for row in result.stdout.splitlines()]
    assert any(row.startswith(line) for row in lines), result.stdout
    assert lines[0].startswith("OK database"), "the database itself answered"


def test_a_column_typo_at_run_time_names_the_key_and_spills_nowhere(workspace: Workspace) -> None:
    """Once this paged CRITICAL 'database did not answer' and took three checks with it."""
    profile = _demo_profile(workspace, columns__status="stat")
    result = workspace.opslib("run", "morning-check", "--profile", str(profile))
    lines = {
        row.split()[1].rstrip(":"): " ".join(row.split())
        for row in result.stdout.splitlines()
        if row.startswith("  ")
    }
    assert result.returncode == 3, result.stdout + result.stderr
    assert lines["stuck_jobs"].startswith("UNKNOWN stuck_jobs: queue.columns.status: jobs has")
    assert "did not answer" not in result.stdout
    assert "database_reachable" not in lines and "database_integrity" not in lines  # both OK
