"""The coverage maps (docs/manuals/<pipeline>.md) read and checked, for tests/test_manuals.py.

A map is a title, a `Manual:` line, a `Counted:` line and one table:

    | # | manual section | item | carried out by | status | test |

Each `problems_*` function returns one line per problem, naming the file and row, so a
failing test says what to fix. A test of the docs, not a part of opslib: it lives here.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import re
from dataclasses import dataclass, field
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
MANUALS = PROJECT / "docs" / "manuals"
HEADER = ["#", "manual section", "item", "carried out by", "status", "test"]
NOTHING = {"—", "-", ""}  # an empty "carried out by" or test cell
STATUS = re.compile(r"^(?P<kind>works|partly|missing|out of scope)(?::\s*(?P<why>.*))?$")
COUNTED = re.compile(
    r"^Counted: (?P<scope>\d+) items? in scope, (?P<works>\d+) works? end to end "
    r"\((?P<pct>\d+(?:\.\d+)?) ?%\), (?P<out>\d+) out of scope\.?$"
)
TEST_REFERENCE = re.compile(r"^tests/(?P<file>[\w/]+\.py)::(?P<name>[A-Za-z_]\w*)(?:\[.*\])?$")


@dataclass
class Row:
    line: int
    cells: list[str]

    @property
    def number(self) -> str:
        return self.cells[0]

    @property
    def carried_by(self) -> list[str]:
        cell = self.cells[3].strip()
        return [] if cell in NOTHING else [ref.strip().strip("`") for ref in cell.split(",")]

    @property
    def status(self) -> str:
        return self.cells[4].strip()

    @property
    def kind(self) -> str:
        found = STATUS.match(self.status)
        return found["kind"] if found else ""

    @property
    def tests(self) -> list[str]:
        cell = self.cells[5].strip()
        return [] if cell in NOTHING else [ref.strip().strip("`") for ref in cell.split(",")]


@dataclass
class CoverageMap:
    path: Path
    rows: list[Row] = field(default_factory=list)
    counted: str | None = None  # the Counted line as written
    problems: list[str] = field(default_factory=list)  # of the table's shape

    @property
    def name(self) -> str:
        return self.path.name

    def at(self, row: Row) -> str:
        return f"{self.name}:{row.line} (row {row.number})"


def _cells(line: str) -> list[str]:
    """The cells of a Markdown table line `| a | b |` (no escaped pipes in these maps)."""
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def read_map(path: Path) -> CoverageMap:
    """The map's rows and Counted line; shape problems are collected, not raised."""
    found = CoverageMap(path)
    lines = path.read_text(encoding="utf-8").splitlines()
    counted = [(n, line) for n, line in enumerate(lines, 1) if line.startswith("Counted:")]
    if len(counted) != 1:
        found.problems.append(f"{path.name}: {len(counted)} 'Counted:' lines, expected one")
    else:
        found.counted = counted[0][1].strip()
    tables = [n for n, line in enumerate(lines) if line.lstrip().startswith("|")]
    if not tables:
        found.problems.append(f"{path.name}: no table")
        return found
    start = tables[0]
    if _cells(lines[start]) != HEADER:
        found.problems.append(
            f"{path.name}:{start + 1}: the table header must be | {' | '.join(HEADER)} |, "
            f"got {lines[start].strip()}"
        )
        return found
    if start + 1 >= len(lines) or set("".join(_cells(lines[start + 1]))) - set("-: "):
        found.problems.append(f"{path.name}:{start + 2}: no |---| line under the table header")
        return found
    index = start + 2
    while index < len(lines) and lines[index].lstrip().startswith("|"):
        cells = _cells(lines[index])
        if len(cells) != len(HEADER):
            found.problems.append(
                f"{path.name}:{index + 1}: {len(cells)} cells, a row has {len(HEADER)}: "
                f"{lines[index].strip()[:80]}"
            )
        else:
            found.rows.append(Row(index + 1, cells))
        index += 1
    later = [n + 1 for n, line in enumerate(lines) if n >= index and line.lstrip().startswith("|")]
    if later:
        found.problems.append(f"{path.name}:{later[0]}: a second table; a map has one")
    if not found.rows and not found.problems:
        found.problems.append(f"{path.name}: the table has no rows")
    return found


def problems_of_rows(coverage: CoverageMap) -> list[str]:
    """Numbers that rise, statuses of the four kinds with their reason, the mandatory
    cells of a working row."""
    problems = []
    previous = 0
    for row in coverage.rows:
        at = coverage.at(row)
        if not row.number.isdigit() or int(row.number) <= previous:
            problems.append(f"{at}: '#' must be a number above the previous row's ({previous})")
        else:
            previous = int(row.number)
        if not row.cells[1] or not row.cells[2]:
            problems.append(f"{at}: the manual section and the item must be named")
        status = STATUS.match(row.status)
        if status is None:
            problems.append(
                f"{at}: status {row.status!r} is not works, 'partly: why', 'missing: why' "
                "or 'out of scope: why'"
            )
        elif status["kind"] == "works" and status["why"] is not None:
            problems.append(f"{at}: status is exactly 'works', got {row.status!r}")
        elif status["kind"] != "works" and not (status["why"] or "").strip():
            problems.append(f"{at}: status {status['kind']!r} needs its reason after a colon")
        if row.kind == "works" and not row.carried_by:
            problems.append(f"{at}: a working row names what carries it out")
        if row.kind == "works" and not row.tests:
            problems.append(f"{at}: a working row names its test (tests/FILE.py::NAME)")
    return problems


def problems_of_counts(coverage: CoverageMap) -> list[str]:
    """The Counted line says what the table holds."""
    if coverage.counted is None:
        return []
    found = COUNTED.match(coverage.counted)
    shape = "Counted: I items in scope, W work end to end (P %), O out of scope."
    if found is None:
        return [f"{coverage.name}: the Counted line must read {shape!r}, got {coverage.counted!r}"]
    out = sum(row.kind == "out of scope" for row in coverage.rows)
    scope = len(coverage.rows) - out
    works = sum(row.kind == "works" for row in coverage.rows)
    written = (int(found["scope"]), int(found["works"]), int(found["out"]))
    problems = []
    if written != (scope, works, out):
        problems.append(
            f"{coverage.name}: Counted says {written[0]} in scope, {written[1]} work, "
            f"{written[2]} out of scope; the table has {scope}, {works}, {out}"
        )
    pct = found["pct"]
    decimals = len(pct.partition(".")[2])
    exact = 100 * works / scope if scope else 0.0
    if abs(float(pct) - exact) > 0.5 * 10**-decimals + 1e-9:
        problems.append(f"{coverage.name}: Counted says {pct} %, the table {exact:.1f} %")
    return problems


def problems_of_references(coverage: CoverageMap) -> list[str]:
    """Each `runbook:`, `check:`, `action:` and `command:` reference names something that is."""
    problems = []
    for row in coverage.rows:
        for reference in row.carried_by:
            kind, _, name = reference.partition(":")
            check = REFERENCE_KINDS.get(kind.strip())
            if check is None or not name.strip():
                problems.append(
                    f"{coverage.at(row)}: {reference!r} is not runbook:NAME, check:NAME, "
                    "action:MODULE.CLASS or command:WORDS"
                )
                continue
            why = check(name.strip())
            if why:
                problems.append(f"{coverage.at(row)}: {reference}: {why}")
    return problems


def problems_of_tests(coverage: CoverageMap) -> list[str]:
    """Each test a row names is a `def` in an existing tests/ file."""
    problems = []
    for row in coverage.rows:
        for reference in row.tests:
            found = TEST_REFERENCE.match(reference)
            if found is None:
                problems.append(
                    f"{coverage.at(row)}: test {reference!r} is not tests/FILE.py::NAME"
                )
                continue
            source = PROJECT / "tests" / found["file"]
            if not source.is_file():
                problems.append(f"{coverage.at(row)}: {reference}: no file tests/{found['file']}")
            elif not re.search(rf"^\s*(async\s+)?def {found['name']}\(", _text(source), re.M):
                problems.append(
                    f"{coverage.at(row)}: {reference}: tests/{found['file']} defines no "
                    f"{found['name']}"
                )
    return problems


@functools.cache
def _text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def runbook_problem(name: str) -> str:
    from opslib.errors import RunbookError
    from opslib.notebooks import find_runbook

    try:
        find_runbook(name)
    except RunbookError as exc:
        return str(exc)
    return ""


def check_problem(name: str) -> str:
    from opslib.checks.catalogue import catalogue

    return "" if name in catalogue() else "not a check in opslib/checks/catalogue.yaml"


def action_problem(name: str) -> str:
    module, _, class_name = name.rpartition(".")
    if not module or not class_name:
        return "an action is MODULE.CLASS (a class in opslib/actions/MODULE.py)"
    try:
        imported = importlib.import_module(f"opslib.actions.{module}")
    except ImportError as exc:
        return f"opslib.actions.{module} does not import ({exc})"
    cls = getattr(imported, class_name, None)
    if not isinstance(cls, type):
        return f"opslib/actions/{module}.py has no class {class_name}"
    missing = [method for method in ("plan", "apply") if not callable(getattr(cls, method, None))]
    return f"{class_name} has no {' or '.join(missing)}: not an action" if missing else ""


@functools.cache
def _command_tree() -> dict:
    """`{word: subtree}` of the opslib command line, from its parser."""
    from opslib.cli import build_parser

    def tree(parser: argparse.ArgumentParser) -> dict:
        return {
            word: tree(sub)
            for action in parser._actions
            if isinstance(action, argparse._SubParsersAction)
            for word, sub in action.choices.items()
        }

    return tree(build_parser())


def command_problem(words: str) -> str:
    """`notify summary`: every word a level of the opslib command line, down to a command."""
    level = _command_tree()
    path = []
    for word in words.split():
        if word not in level:
            where = f"opslib {' '.join(path)}".strip()
            return f"{where} has no command {word!r} (it has: {', '.join(sorted(level)) or 'none'})"
        path.append(word)
        level = level[word]
    if level:
        return f"opslib {words} needs one of its commands: {', '.join(sorted(level))}"
    return ""


REFERENCE_KINDS = {
    "runbook": runbook_problem,
    "check": check_problem,
    "action": action_problem,
    "command": command_problem,
}


def problems(path: Path) -> list[str]:
    """Everything wrong with one map, one line per problem."""
    coverage = read_map(path)
    return [
        *coverage.problems,
        *problems_of_rows(coverage),
        *problems_of_counts(coverage),
        *problems_of_references(coverage),
        *problems_of_tests(coverage),
    ]


def manual_problems(profile_name: str) -> list[str]:
    """A shipped profile's `manual:` section points at an existing map and at runbooks that
    exist and apply to it; its quick commands are opslib command lines that parse."""
    from opslib.errors import RunbookError
    from opslib.notebooks import applies, find_runbook
    from opslib.profiles import load_profile

    profile = load_profile(profile_name)
    manual = profile.manual
    where = f"parameters/profiles/{profile_name}.yaml manual"
    if manual is None:
        return [f"{where}: no manual: section"]
    found = []
    if not manual.coverage:
        found.append(f"{where}.coverage: not set (docs/manuals/<pipeline>.md)")
    elif not (PROJECT / manual.coverage).is_file():
        found.append(f"{where}.coverage: no file {manual.coverage}")
    for words, runbook in manual.symptoms.items():
        try:
            notebook = find_runbook(runbook)
        except RunbookError as exc:
            found.append(f"{where}.symptoms[{words}]: {exc}")
            continue
        if not applies(notebook, profile):
            found.append(
                f"{where}.symptoms[{words}]: {runbook} does not apply to {profile_name} "
                f"(`opslib list --profile {profile_name}`)"
            )
    for alias, command in manual.commands.items():
        why = command_line_problem(command)
        if why:
            found.append(f"{where}.commands[{alias}]: {command!r}: {why}")
    return found


def command_line_problem(command: str) -> str:
    """An `opslib ...` line the parser accepts, and a runbook it runs that exists; a
    command that is not opslib's (a shell line) is left alone."""
    import shlex

    from opslib.cli import build_parser

    words = shlex.split(command)
    if not words or words[0] != "opslib":
        return ""
    try:
        args = build_parser().parse_args(words[1:])
    except SystemExit:
        return "the opslib command line refuses it (see opslib --help)"
    if getattr(args, "command", None) in ("run", "ack"):
        return runbook_problem(args.runbook)
    return ""
