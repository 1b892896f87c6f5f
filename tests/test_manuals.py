"""Each pipeline's manual, whole: the coverage maps (docs/manuals/*.md) name only what
exists and count what they hold, every shipped pipeline profile carries its `manual:`, and
`opslib manual PROFILE` turns it into the page a person on call reads (text, and HTML
linked from the status board)."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from manual_maps import MANUALS, PROJECT, manual_problems, problems

from opslib.archive.ledger import Ledger, RunRecord
from opslib.clock import utc_now
from opslib.profiles import available_profiles

MAPS = sorted(MANUALS.glob("*.md"))
# every shipped profile but the built-in demo, which no manual describes
PIPELINES = [name for name in available_profiles() if name != "demo"]


@pytest.mark.parametrize("path", MAPS, ids=[path.stem for path in MAPS])
def test_every_coverage_map_names_what_exists_and_counts_its_rows(path: Path) -> None:
    found = problems(path)
    assert found == [], "\n".join(found)


def _manual_section(name: str) -> bool:
    from opslib.profiles import load_profile

    return load_profile(name).manual is not None


@pytest.mark.parametrize("name", PIPELINES)
def test_a_shipped_profiles_manual_section_names_its_map_and_runbooks_that_apply(
    name: str,
) -> None:
    if not _manual_section(name):
        pytest.skip(f"{name} has no manual: section (see the next test)")
    found = manual_problems(name)
    assert found == [], "\n".join(found)


def test_every_shipped_pipeline_profile_carries_its_manual() -> None:
    lacking = [name for name in PIPELINES if not _manual_section(name)]
    if lacking:
        pytest.xfail(f"no manual: section yet in {', '.join(lacking)} (issue #18 in progress)")
    assert lacking == []


# --- the checker itself, on maps written here ---------------------------------------------

GOOD = """# The demo manual, item by item

Manual: `demo.md` (../shared/runbooks/). Profile: `parameters/profiles/demo.yaml`.

Counted: 3 items in scope, 2 work end to end (67 %), 1 out of scope.

| # | manual section | item | carried out by | status | test |
|---|---|---|---|---|---|
| 1 | Daily > Morning | queue depth | check:queue_depth, runbook:morning-check | works | tests/test_manuals.py::test_a_good_map_has_no_problem |
| 2 | Daily > Evening | reset stuck jobs | action:queue.ResetStuckJobs, command:notify summary | works | tests/test_manuals.py::test_a_bad_map_says_each_problem_once[x] |
| 3 | Incidents | I/O statistics | — | missing: no I/O probe | |
| 5 | Development | change the code | — | out of scope: a change to the pipeline's code | |
"""


def _problems(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "demo.md"
    path.write_text(text, encoding="utf-8")
    return problems(path)


def test_a_good_map_has_no_problem(tmp_path: Path) -> None:
    assert _problems(tmp_path, GOOD) == []


def test_a_bad_map_says_each_problem_once(tmp_path: Path) -> None:
    bad = (
        GOOD.replace("check:queue_depth", "check:queue_deepness")
        .replace("runbook:morning-check", "runbook:morning-chek")
        .replace("action:queue.ResetStuckJobs", "action:queue.ResetEverything")
        .replace("command:notify summary", "command:notify")
        .replace("test_manuals.py::test_a_good_map_has_no_problem", "test_manuals.py::nope")
        .replace("missing: no I/O probe", "absent")
    )
    found = _problems(tmp_path, bad)
    expected = [
        "demo.md:11 (row 3): status 'absent' is not works, 'partly: why', 'missing: why' or "
        "'out of scope: why'",
        "demo.md:9 (row 1): check:queue_deepness: not a check in opslib/checks/catalogue.yaml",
        "demo.md:9 (row 1): runbook:morning-chek: no runbook named 'morning-chek' under "
        "notebooks/ (did you mean morning-check",  # and whichever names are close
        "demo.md:10 (row 2): action:queue.ResetEverything: opslib/actions/queue.py has no class "
        "ResetEverything",
        "demo.md:10 (row 2): command:notify: opslib notify needs one of its commands: summary, test",
        "demo.md:9 (row 1): tests/test_manuals.py::nope: tests/test_manuals.py defines no nope",
    ]
    assert [
        problem[: len(line)] for problem, line in zip(found, expected, strict=False)
    ] == expected
    assert len(found) == len(expected), found


def test_a_map_whose_counts_or_shape_are_off_says_so(tmp_path: Path) -> None:
    miscounted = GOOD.replace("2 work end to end (67 %)", "3 work end to end (100 %)")
    assert _problems(tmp_path, miscounted) == [
        "demo.md: Counted says 3 in scope, 3 work, 1 out of scope; the table has 3, 2, 1",
        "demo.md: Counted says 100 %, the table 66.7 %",
    ]
    reshaped = GOOD.replace("| status | test |", "| state | test |")
    assert _problems(tmp_path, reshaped)[0].startswith("demo.md:7: the table header must be")
    untested = GOOD.replace(
        "| works | tests/test_manuals.py::test_a_good_map_has_no_problem |", "| works | |"
    )
    assert _problems(tmp_path, untested) == [
        "demo.md:9 (row 1): a working row names its test (tests/FILE.py::NAME)"
    ]
    unnumbered = GOOD.replace("| 5 | Development", "| 2 | Development")
    assert "(row 2): '#' must be a number above the previous row's (3)" in " ".join(
        _problems(tmp_path, unnumbered)
    )


# --- opslib manual PROFILE ----------------------------------------------------------------

MANUAL = """
manual:
  source: demo-pipeline.md
  coverage: docs/manuals/demo-that-is-not-there.md
  symptoms:
    queue not processing: queue-not-processing
    nothing looked at overnight: morning-check
  commands:
    queuedepth: opslib run hourly-monitor --profile demo
severity:
  P1: [queue_depth=CRITICAL]
  P3: ["*=WARNING"]
"""


def _opslib(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("OPSLIB_")}
    env.update(OPSLIB_REPORTS_DIR=str(tmp_path / "reports"), OPSLIB_DATA_DIR=str(tmp_path / "data"))
    return subprocess.run(
        [sys.executable, "-m", "opslib", *args],
        env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )  # fmt: skip


@pytest.fixture
def with_manual(tmp_path: Path) -> Path:
    """The demo profile with a manual, and one queue-not-processing run in the ledger."""
    profile = tmp_path / "demo.yaml"
    demo = (PROJECT / "parameters" / "profiles" / "demo.yaml").read_text(encoding="utf-8")
    profile.write_text(demo + MANUAL, encoding="utf-8")
    Ledger(f"sqlite:///{tmp_path / 'reports' / 'ledger.sqlite'}").record_run(
        RunRecord(
            run_id="run-1",
            runbook="queue-not-processing",
            profile="demo",
            started_at=utc_now() - timedelta(hours=2),
            duration_s=3.0,
            status="WARNING",
            exit_code=1,
            summary="3 jobs stuck in render",
            notebook_path=None,
            html_path="2026/run-1.html",
            git_sha=None,
            os_user="me",
            run_by="",
            host="host",
            parameters={},
        ),
        [],
    )
    return profile


def test_the_manual_shows_each_symptom_with_its_runbooks_latest_state(
    tmp_path: Path, with_manual: Path
) -> None:
    result = _opslib(tmp_path, "manual", str(with_manual))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert all(len(line) <= 100 for line in lines), [line for line in lines if len(line) > 100]
    text = "\n".join(lines)
    assert "The demo-pipeline.md manual, as opslib runs it on profile demo" in text
    assert "docs/manuals/demo-that-is-not-there.md not readable" in text
    first, second = text.split("  nothing looked at overnight\n")
    assert "opslib run queue-not-processing --profile demo" in first
    assert "latest    WARNING " in first and "(2 hours ago): 3 jobs stuck in render" in first
    assert "report    reports/2026/run-1.html" in first
    assert "schedule  not scheduled" in first
    # morning-check has not run here; the shipped schedule runs it on demo at 07:00
    assert "latest    not run yet" in second
    assert "schedule  cron 0 7 * * *, next " in second
    assert "P1  queue_depth=CRITICAL" in second and "P3  *=WARNING" in second
    assert "queuedepth  opslib run hourly-monitor --profile demo" in second


def test_a_profile_without_a_manual_or_unknown_is_one_line(tmp_path: Path) -> None:
    bare = tmp_path / "bare.yaml"
    bare.write_text("name: bare\n", encoding="utf-8")
    for name, said in ((str(bare), "profile bare has no manual: section"),
                       ("no-such-profile", "no profile named 'no-such-profile'")):  # fmt: skip
        result = _opslib(tmp_path, "manual", name)
        assert result.returncode == 3 and result.stdout == "", result.stdout + result.stderr
        assert result.stderr.count("\n") == 1 and said in result.stderr, result.stderr


def test_the_html_page_is_owner_only_and_linked_from_the_board(
    tmp_path: Path, with_manual: Path
) -> None:
    result = _opslib(tmp_path, "manual", str(with_manual), "--html")
    assert result.returncode == 0, result.stderr
    page = tmp_path / "reports" / "manual-demo.html"
    assert result.stdout.strip() == "manual page: reports/manual-demo.html"
    assert page.stat().st_mode & 0o077 == 0
    html = page.read_text(encoding="utf-8")
    assert 'href="2026/run-1.html"' in html and "3 jobs stuck in render" in html
    assert "queue not processing" in html and "not run yet" in html
    board = (tmp_path / "reports" / "index.html").read_text(encoding="utf-8")
    # the board's row of the demo's run, and the list of manuals above it
    row = board.split('<tr class="board-row">')[1].split("</tr>")[0]
    assert "queue-not-processing" in row and 'href="manual-demo.html"' in row
    assert board.count('href="manual-demo.html"') == 2
