"""The layout shows the architecture, and stays that way: small modules, a short top
level, no import cycle (imports inside functions counted), and every import going down
the layers that docs/ARCHITECTURE.md draws. Read from the source with `ast`, so the
check costs well under a second and imports nothing."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "opslib"
MAX_LINES = 400
MAX_TOP_ENTRIES = 20

# The parts, lowest first: a module may import its own part and the parts before it.
# A prefix ending in "." is a package's modules; otherwise the module (or package) itself.
PARTS = [
    ("leaves", ("opslib.status", "opslib.units", "opslib.clock", "opslib.errors", "opslib.paths")),
    ("context", ("opslib.context",)),
    ("judge", ("opslib.checks",)),
    ("profiles", ("opslib.profiles",)),
    ("probes", ("opslib.probes",)),
    ("gate", ("opslib.actions",)),
    ("notebooks", ("opslib.notebooks",)),
    ("remedies", ("opslib.actions.",)),
    ("demo", ("opslib.demo",)),
    ("archive", ("opslib.archive",)),
    ("alerting", ("opslib.alerting",)),
    ("runbook", ("opslib.runbook",)),
    ("schedule", ("opslib.schedule",)),
    ("runner", ("opslib.runner",)),
    ("cli", ("opslib.cli", "opslib.__main__", "opslib")),
]


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


MODULES = _modules()


def _resolve(name: str) -> str | None:
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imports(path: Path) -> set[str]:
    """Every opslib module `path` imports, at module level or inside a function; imports
    under `if TYPE_CHECKING:` never run and are left out."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING":
            node.body = []
    found: set[str | None] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {
                _resolve(alias.name) for alias in node.names if alias.name.startswith("opslib")
            }
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("opslib"):
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                found.add(full if full in MODULES else _resolve(node.module))
    return {name for name in found if name}


GRAPH = {name: _imports(path) - {name} for name, path in MODULES.items()}


def _part(module: str) -> int:
    """The index in PARTS of the part `module` belongs to (the longest prefix wins)."""
    best, best_length = -1, -1
    for index, (_, prefixes) in enumerate(PARTS):
        for prefix in prefixes:
            matches = (
                module.startswith(prefix)
                if prefix.endswith(".")
                else module == prefix or module.startswith(prefix + ".")
            )
            if matches and len(prefix) > best_length:
                best, best_length = index, len(prefix)
    return best


def _cycles() -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    components = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in GRAPH[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in GRAPH:
        if node not in index:
            visit(node)
    return components


def test_no_module_is_over_the_size_limit() -> None:
    sizes = {name: len(path.read_text().splitlines()) for name, path in MODULES.items()}
    assert {name: lines for name, lines in sizes.items() if lines > MAX_LINES} == {}


def test_the_top_of_the_package_stays_short() -> None:
    entries = [entry for entry in PACKAGE.iterdir() if entry.name != "__pycache__"]
    assert len(entries) <= MAX_TOP_ENTRIES, sorted(entry.name for entry in entries)


def test_there_is_no_import_cycle() -> None:
    assert _cycles() == []


def test_every_module_belongs_to_a_part() -> None:
    assert [name for name in MODULES if _part(name) < 0] == []


def test_imports_go_down_the_layers() -> None:
    upward = sorted(
        f"{source} -> {target} ({PARTS[_part(source)][0]} imports {PARTS[_part(target)][0]})"
        for source, targets in GRAPH.items()
        for target in targets
        if _part(target) > _part(source)
    )
    assert upward == []


@pytest.mark.parametrize(
    ("importer", "imported"),
    [
        ("opslib.probes", "opslib.archive"),
        ("opslib.probes", "opslib.checks"),
        ("opslib.actions", "opslib.archive"),
        ("opslib.status", "opslib."),
        ("opslib.units", "opslib."),
        ("opslib.clock", "opslib."),
    ],
)
def test_forbidden_directions(importer: str, imported: str) -> None:
    found = [
        (source, target)
        for source, targets in GRAPH.items()
        if source == importer or source.startswith(importer + ".")
        for target in targets
        if target.startswith(imported)
    ]
    assert found == []


def test_only_the_cli_and_the_runner_import_the_runner() -> None:
    found = [
        (source, target)
        for source, targets in GRAPH.items()
        if not source.startswith(("opslib.runner", "opslib.cli"))
        for target in targets
        if target.startswith("opslib.runner")
    ]
    assert found == []
