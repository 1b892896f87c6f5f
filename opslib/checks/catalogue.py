"""The one registry: `catalogue.yaml` read into validated specs, once per process.

It says, for every check, what it measures (`probe`), what a profile must have for it to
apply (`needs`), which names label its results (`labels`) and how it is judged by
default; and, for every target kind a profile can name, which checks prove the target
answers (`targets`), and which checks prove the profile's mapping means something in
them (`meaning`). `opslib profile check`, the report header and a profile's label
validation read it; `tests/test_registry.py` fails when an entry does not resolve.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict

from opslib.checks import Threshold

CATALOGUE_FILE = Path(__file__).with_name("catalogue.yaml")
# needs the run hands to the probe as an argument of the same name, rather than the
# profile providing them: `history` is the ledger of earlier runs
RUN_RESOURCES = ("history",)


def _as_list(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


class CheckSpec(BaseModel):
    """What a check measures and how it is judged by default. `labels` is the profile
    key whose names label the results (`stages.steps`), or the fixed labels, or None
    when the labels come from the target itself (tables, GPUs)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    description: str
    needs: Annotated[tuple[str, ...], BeforeValidator(_as_list)]
    probe: str
    unit: str = ""
    warning: str | None = None
    critical: str | None = None
    labels: str | tuple[str, ...] | None = None

    @property
    def profile_needs(self) -> tuple[str, ...]:
        """What the profile must provide (the run's own resources left out)."""
        return tuple(need for need in self.needs if need not in RUN_RESOURCES)

    @property
    def run_resources(self) -> tuple[str, ...]:
        return tuple(need for need in self.needs if need in RUN_RESOURCES)

    def probe_function(self) -> Callable[..., Any]:
        module, _, function = self.probe.partition(":")
        return getattr(importlib.import_module(module), function)

    def thresholds(self, warning: str | None, critical: str | None) -> tuple[Threshold | None, ...]:
        """The thresholds in force: the profile's where it sets them, else the catalogue's."""
        chosen = (warning or self.warning, critical or self.critical)
        return tuple(Threshold.parse(spec) if spec else None for spec in chosen)


class TargetKind(BaseModel):
    """A kind of target a profile names under `targets:`, and the checks whose probes
    prove such a target answers (what `opslib profile check` runs)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    answers: tuple[str, ...]


@functools.cache
def _registry() -> tuple[dict[str, CheckSpec], dict[str, TargetKind], tuple[str, ...]]:
    raw = yaml.safe_load(CATALOGUE_FILE.read_text(encoding="utf-8"))
    checks = {name: CheckSpec(name=name, **spec) for name, spec in raw["checks"].items()}
    kinds = {name: TargetKind(name=name, **spec) for name, spec in raw["targets"].items()}
    return checks, kinds, tuple(raw.get("meaning", ()))


def catalogue() -> dict[str, CheckSpec]:
    """Every check opslib knows, by name."""
    return _registry()[0]


def target_kinds() -> dict[str, TargetKind]:
    """Every target kind, by the key a profile names it with under `targets:`."""
    return _registry()[1]


def meaning_checks() -> tuple[str, ...]:
    """The checks `profile check` runs to see that the mapping means something."""
    return _registry()[2]


def check_names() -> list[str]:
    return sorted(catalogue())
