"""The runbooks: which notebooks exist, what they say about themselves, which parameter
values a run may give them, and which profiles they apply to.

A runbook is `notebooks/<group>/<name>.ipynb`; its first code cell is tagged `parameters`
and declares typed defaults (`window_hours: int = 24`) that papermill can inspect. What
it is for follows from its steps: the catalogue checks its cells evaluate, each with the
`needs` the catalogue gives it.
"""

from __future__ import annotations

import ast
import contextlib
import difflib
import functools
import json
from pathlib import Path
from typing import Any

from opslib import paths
from opslib.checks.catalogue import catalogue
from opslib.errors import ProfileError, RunbookError
from opslib.profiles import Profile
from opslib.profiles.needs import known

# The scrapbook name a runbook records its check results under, for the runner to read.
RESULTS_SCRAP = "opslib_results"
# The mimetype of a step's output when the step did not apply to the profile: the report
# drops such steps (and an explanation all of whose steps were dropped).
NOT_APPLICABLE_MIME = "application/vnd.opslib.not-applicable+json"
# The mimetype of the traceback of an error nobody foresaw, shown where it happened: the
# report folds every traceback (these and those of cells that raised) into one block.
TRACEBACK_MIME = "application/vnd.opslib.traceback+json"
TRUE_WORDS = {"true", "yes", "1", "on"}
# A number that measures a span, a size or how many to show must be above zero: a window
# of 0 or -5 hours holds nothing, and nothing measured would read as all clear. The name
# says which numbers those are (STYLE: units in names where a number has one).
POSITIVE_SUFFIXES = ("_hours", "_days", "_minutes", "_s", "_megabytes")
POSITIVE_NAMES = {"days", "top"}
FALSE_WORDS = {"false", "no", "0", "off"}
# needs every pipeline on a database shares: a step that needs only these (the database
# answers, the machine has room) is a precondition, not what a runbook is for
BASELINE_NEEDS = {"host", "database"}


def runbook_paths() -> dict[str, Path]:
    """Every runbook by name; two notebooks with one name would make `run NAME` ambiguous."""
    found: dict[str, Path] = {}
    for path in sorted(paths.notebooks_dir().rglob("*.ipynb")):
        if ".ipynb_checkpoints" in path.parts:
            continue
        if path.stem in found:
            raise RunbookError(f"two runbooks are named {path.stem}: {found[path.stem]} and {path}")
        found[path.stem] = path
    return found


def find_runbook(name: str) -> Path:
    known = runbook_paths()
    if name in known:
        return known[name]
    close = difflib.get_close_matches(name, list(known), n=3, cutoff=0.5)
    hint = f"did you mean {', '.join(close)}?" if close else f"known: {', '.join(known)}"
    raise RunbookError(f"no runbook named {name!r} under notebooks/ ({hint})")


def declared_parameters(notebook: Path) -> dict[str, dict[str, Any]]:
    """The parameters cell's names, inferred types, defaults and help, via papermill."""
    import papermill

    try:
        return papermill.inspect_notebook(str(notebook))
    except Exception as exc:  # noqa: BLE001 - any unreadable notebook is one user-facing line
        raise RunbookError(
            f"{notebook}: cannot read its parameters ({type(exc).__name__})"
        ) from None


def purpose(notebook: Path) -> str:
    """The first plain line of the notebook's first markdown cell."""
    cells = _notebook(notebook).get("cells")
    if cells is None:
        return "(unreadable notebook)"
    for cell in cells:
        if cell.get("cell_type") != "markdown":
            continue
        for line in "".join(cell.get("source", [])).splitlines():
            if line.strip() and not line.lstrip().startswith("#"):
                return line.strip()
    return ""


def _type_name(spec: dict[str, Any]) -> str:
    """The declared type (from an annotation), else the type of the default literal."""
    declared = spec.get("inferred_type_name", "None")
    if declared not in {"None", ""}:
        return declared
    try:
        return type(ast.literal_eval(spec.get("default", "None"))).__name__
    except (ValueError, SyntaxError):
        return "str"


def _coerce(key: str, raw: str, type_name: str) -> Any:
    if type_name == "bool":
        if raw.lower() in TRUE_WORDS:
            return True
        if raw.lower() in FALSE_WORDS:
            return False
        raise RunbookError(f"parameter {key} takes true or false, got {raw!r}")
    if type_name in {"int", "float"}:
        try:
            number = int(raw) if type_name == "int" else float(raw)
        except ValueError:
            raise RunbookError(
                f"parameter {key} takes a number ({type_name}), got {raw!r}"
            ) from None
        positive = key in POSITIVE_NAMES or key.endswith(POSITIVE_SUFFIXES)
        if positive and not 0 < number < float("inf"):
            raise RunbookError(f"parameter {key} must be more than 0, got {raw!r}")
        return number
    return raw


def parse_overrides(
    runbook: str, overrides: list[str], declared: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    """`KEY=VALUE` strings checked against the declared parameters and typed like them."""
    values: dict[str, Any] = {}
    settable = sorted(name for name in declared if name != "profile")
    for item in overrides:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise RunbookError(f"parameter {item!r} is not KEY=VALUE")
        if key == "profile":
            raise RunbookError("set the profile with --profile NAME, not -p profile=…")
        if key not in declared:
            raise RunbookError(
                f"unknown parameter {key!r} for {runbook} (valid: {', '.join(settable) or 'none'})"
            )
        values[key] = _coerce(key, raw, _type_name(declared[key]))
    return values


def _notebook(notebook: Path) -> dict[str, Any]:
    """The notebook's JSON ({} when unreadable), read once per version of the file: listing
    the runbooks asks each of them, for every profile, what it is for."""
    try:
        version = notebook.stat().st_mtime_ns
    except OSError:
        return {}
    return _read(notebook, version)


@functools.lru_cache(maxsize=128)
def _read(notebook: Path, _version: int) -> dict[str, Any]:
    try:
        return json.loads(notebook.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _code(notebook: Path) -> list[ast.Module]:
    """The parsed code cells, IPython's `%magic` and `!shell` lines left out (a cell that
    is still not Python is skipped); parsed once per version of the file."""
    try:
        return _parse(notebook, notebook.stat().st_mtime_ns)
    except OSError:
        return []


@functools.lru_cache(maxsize=128)
def _parse(notebook: Path, version: int) -> list[ast.Module]:
    trees = []
    for cell in _read(notebook, version).get("cells", []):
        if cell.get("cell_type") != "code":
            continue
        lines = "".join(cell.get("source", [])).splitlines()
        python = "\n".join("" if line.lstrip()[:1] in ("%", "!") else line for line in lines)
        with contextlib.suppress(SyntaxError):
            trees.append(ast.parse(python))
    return trees


def _calls(notebook: Path, method: str) -> list[ast.Call]:
    """Every `x.method(...)` call in the runbook's code, in order."""
    return [
        node
        for tree in _code(notebook)
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == method and node.args
    ]


def steps(notebook: Path) -> list[str]:
    """The catalogue checks the runbook's cells evaluate (`rb.evaluate("name", ...)`), in
    order, each once."""
    found: dict[str, None] = {}
    for call in _calls(notebook, "evaluate"):
        if isinstance(call.args[0], ast.Constant) and isinstance(call.args[0].value, str):
            found[call.args[0].value] = None
    return [check for check in found if check in catalogue()]


def action_needs(notebook: Path) -> list[str]:
    """What the actions the runbook hands to `rb.act(Action(...))` need, read from the action
    classes' source (`needs: ClassVar[str] = "..."`) without importing them: listing the
    runbooks stays quick. An action imported another way, or whose class cannot be read
    so, is not counted (the registry test holds the shipped runbooks to this form)."""
    imported = {
        alias.asname or alias.name: (node.module, alias.name)
        for tree in _code(notebook)
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("opslib.actions")
        for alias in node.names
    }
    acted = [
        imported[call.args[0].func.id]
        for call in _calls(notebook, "act")
        if isinstance(call.args[0], ast.Call)
        and isinstance(call.args[0].func, ast.Name)
        and call.args[0].func.id in imported
    ]
    return [need for need in (_declared_need(*action) for action in acted) if need]


@functools.cache
def _declared_need(module: str, class_name: str) -> str | None:
    """The `needs` a class in an opslib module declares, or its base class in that module."""
    source = Path(__file__).resolve().parent.joinpath(*module.split(".")[1:])
    source = source / "__init__.py" if source.is_dir() else source.with_suffix(".py")
    try:
        body = ast.parse(source.read_text(encoding="utf-8")).body
    except (OSError, SyntaxError):
        return None
    classes = {node.name: node for node in body if isinstance(node, ast.ClassDef)}
    cls = classes.get(class_name)
    while cls is not None:
        for statement in cls.body:
            if (
                isinstance(statement, ast.AnnAssign | ast.Assign)
                and "needs" in [getattr(target, "id", "") for target in _targets(statement)]
                and isinstance(statement.value, ast.Constant)
            ):
                return str(statement.value.value)
        bases = [base.id for base in cls.bases if isinstance(base, ast.Name)]
        cls = classes.get(bases[0]) if bases else None
    return None


def _targets(statement: ast.AnnAssign | ast.Assign) -> list[ast.expr]:
    return statement.targets if isinstance(statement, ast.Assign) else [statement.target]


def _applies_to(notebook: Path) -> list[str] | None:
    """The notebook metadata's `opslib.applies_to`: a list of needs opslib knows."""
    declared = _notebook(notebook).get("metadata", {}).get("opslib", {}).get("applies_to")
    if declared is None:
        return None
    unknown = (
        [need for need in declared if need not in known()] if isinstance(declared, list) else []
    )
    if not isinstance(declared, list) or not declared or unknown:
        raise RunbookError(
            f"{notebook}: metadata opslib.applies_to must be a list of needs "
            f"({', '.join(known())}), not {declared!r}"
        )
    return declared


def _purposes(notebook: Path) -> list[set[str]]:
    """What each step of the runbook needs, for the steps that say what it is for: a check
    needing more than the baseline, and every action (a change is the point). A runbook
    whose action only reacts to what its checks find (halting when over budget) says what
    it is for in its metadata instead: `opslib.applies_to`, a list of needs, any of which
    makes it apply."""
    declared = _applies_to(notebook)
    if declared:
        return [{need} for need in declared]
    checks = [set(catalogue()[check].profile_needs) for check in steps(notebook)]
    return [needs for needs in checks if needs - BASELINE_NEEDS] + [
        {need} for need in action_needs(notebook)
    ]


def what_for(notebook: Path) -> set[str]:
    """What the runbook is for: the needs of its purposeful steps."""
    return set().union(*_purposes(notebook))


def _provides(profile: Profile, need: str) -> bool:
    """Whether the profile has `need`; a variable not set where this runs (listing the
    shipped profiles on a laptop) does not make the profile lack what it names."""
    try:
        return profile.provides(need)
    except ProfileError:
        return True


def applies(notebook: Path, profile: Profile) -> bool:
    """Whether some step beyond the baseline can run on the profile: the runbook is for
    something the profile has. A runbook with no such step (only its own code) applies."""
    purposes = _purposes(notebook)
    return not purposes or any(
        all(_provides(profile, need) for need in needs) for needs in purposes
    )


def refuse_unless_applies(runbook: str, notebook: Path, profile: Profile) -> None:
    """One line naming what the runbook needs and the runbooks that do apply."""
    if applies(notebook, profile):
        return
    fitting = [name for name, path in runbook_paths().items() if applies(path, profile)]
    raise RunbookError(
        f"{runbook} does not apply to profile {profile.name}: its steps need "
        f"{' or '.join(sorted(what_for(notebook))) or 'nothing a profile names'}; "
        f"runbooks that apply: {', '.join(fitting) or 'none'}"
    )
