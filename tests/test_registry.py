"""The one registry, checked the way postgres_exporter checks its collectors at start-up:
a check whose need does not resolve, a probe that does not import, a target kind with no
check proving it answers, or labels that name no profile key fail here, in a second,
rather than as a step silently skipped in someone's report."""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import types
from typing import Any, Union, get_args, get_origin

import pytest
from pydantic import BaseModel

from opslib import actions
from opslib.checks.catalogue import (
    RUN_RESOURCES,
    CheckSpec,
    TargetKind,
    catalogue,
    meaning_checks,
    target_kinds,
)
from opslib.notebooks import _calls, _code, _declared_need, runbook_paths
from opslib.probes.workbook_outputs import OUTPUT_PROBLEMS
from opslib.profiles.needs import known
from opslib.profiles.profile import Profile
from opslib.profiles.targets import Targets


def unregistered_kinds(kinds: list[str], registry: dict[str, TargetKind]) -> list[str]:
    """Target kinds a profile can name that no catalogue entry proves answers."""
    return [
        kind for kind in kinds if not registry.get(kind, TargetKind(name=kind, answers=())).answers
    ]


def unresolved_needs(specs: dict[str, CheckSpec]) -> list[str]:
    return [
        f"{spec.name}: {need}"
        for spec in specs.values()
        for need in spec.needs
        if need not in known() and need not in RUN_RESOURCES
    ]


def _model_of(annotation: Any) -> Any:
    """The pydantic model or container type behind `Stages | None`."""
    if get_origin(annotation) in (Union, types.UnionType):
        return next(arg for arg in get_args(annotation) if arg is not type(None))
    return annotation


def _resolves(path: str) -> bool:
    node: Any = Profile
    for key in path.split("."):
        if (
            not (isinstance(node, type) and issubclass(node, BaseModel))
            or key not in node.model_fields
        ):
            return False
        node = _model_of(node.model_fields[key].annotation)
    return get_origin(node) is dict


def test_every_need_of_every_check_resolves() -> None:
    assert unresolved_needs(catalogue()) == []


def test_a_need_nobody_provides_is_caught() -> None:
    typo = CheckSpec(name="kafka_lag", description="", needs="kafak", probe="x:y")
    assert unresolved_needs({"kafka_lag": typo}) == ["kafka_lag: kafak"]


def test_every_probe_imports_and_takes_what_the_run_hands_it() -> None:
    for spec in catalogue().values():
        probe = spec.probe_function()
        parameters = inspect.signature(probe).parameters
        assert list(parameters)[0] == "profile", spec.name
        for resource in spec.run_resources:
            assert resource in parameters, f"{spec.name}: {spec.probe} takes no {resource}"


def test_every_target_kind_has_a_check_that_proves_it_answers() -> None:
    """The test that would have caught Redis missing from `opslib profile check` and from
    the report header: both read the registry, and every kind must be in it."""
    assert unregistered_kinds(list(Targets.model_fields), target_kinds()) == []
    assert set(target_kinds()) <= set(Targets.model_fields)
    for kind in target_kinds().values():
        for check in kind.answers:
            assert catalogue()[check].profile_needs == (kind.name,), check


def test_the_meaning_checks_are_catalogue_checks() -> None:
    assert meaning_checks() and set(meaning_checks()) <= set(catalogue())


def test_a_target_kind_added_without_its_catalogue_entry_is_caught() -> None:
    kinds = [*Targets.model_fields, "kafka"]
    assert unregistered_kinds(kinds, target_kinds()) == ["kafka"]
    without_redis = {name: kind for name, kind in target_kinds().items() if name != "redis"}
    assert unregistered_kinds(list(Targets.model_fields), without_redis) == ["redis"]


def test_labels_name_a_profile_key_or_are_the_probes_own() -> None:
    for spec in catalogue().values():
        if isinstance(spec.labels, str):
            assert _resolves(spec.labels), f"{spec.name}: no profile key {spec.labels}"
    assert catalogue()["output_files"].labels == OUTPUT_PROBLEMS


def test_every_action_needs_what_a_profile_can_provide() -> None:
    modules = [
        importlib.import_module(f"opslib.actions.{info.name}")
        for info in pkgutil.iter_modules(actions.__path__)
    ]
    needs = {
        cls.needs
        for module in modules
        for _, cls in inspect.getmembers(module, inspect.isclass)
        if cls.__module__ == module.__name__ and isinstance(getattr(cls, "needs", None), str)
    }
    assert needs and needs - {""} <= set(known())


def test_the_needs_read_from_action_source_are_the_classes_needs() -> None:
    """Applicability reads an action's needs from its source without importing it; what
    it reads must be what the class says, for every action a runbook hands to rb.act."""
    read = 0
    for notebook in runbook_paths().values():
        for call in _calls(notebook, "act"):
            name = call.args[0].func.id
            module = next(
                node.module
                for tree in _code(notebook)
                for node in ast.walk(tree)
                if isinstance(node, ast.ImportFrom)
                and any(alias.name == name for alias in node.names)
            )
            cls = getattr(importlib.import_module(module), name)
            assert _declared_need(module, name) == cls.needs, f"{notebook.stem}: {name}"
            read += 1
    assert read >= 15, "every runbook's actions were found"


@pytest.mark.parametrize("kind", list(Targets.model_fields))
def test_every_target_kind_is_a_need_of_its_own(kind: str) -> None:
    assert kind in known()


def test_the_report_header_lists_every_target_the_profile_names() -> None:
    profile = Profile.model_validate(
        {
            "name": "everything",
            "targets": {
                "database": {"url": "postgresql://ops:hunter22@db:5432/pipeline"},
                "redis": {"url": "redis://:hunter22@cache:6379/0"},
                "logs": {"paths": ["/var/log/pipeline/*.log"]},
                "disks": {"data": "/srv"},
                "http": {"api": {"url": "http://api/health"}},
                "gpu": {},
            },
        }
    )
    lines = profile.describe_targets()
    assert [line.split()[0].rstrip(":") for line in lines] == list(Targets.model_fields)
    assert not any("hunter22" in line for line in lines)
