"""The check catalogue: `catalogue.yaml` read into validated specs, once per process."""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict

from opslib.checks import Threshold

CATALOGUE_FILE = Path(__file__).with_name("catalogue.yaml")


class CheckSpec(BaseModel):
    """What a check measures and how it is judged by default."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    description: str
    needs: str
    probe: str
    unit: str = ""
    warning: str | None = None
    critical: str | None = None

    def probe_function(self) -> Callable[..., Any]:
        module, _, function = self.probe.partition(":")
        return getattr(importlib.import_module(module), function)

    def thresholds(self, warning: str | None, critical: str | None) -> tuple[Threshold | None, ...]:
        """The thresholds in force: the profile's where it sets them, else the catalogue's."""
        chosen = (warning or self.warning, critical or self.critical)
        return tuple(Threshold.parse(spec) if spec else None for spec in chosen)


@functools.cache
def catalogue() -> dict[str, CheckSpec]:
    raw = yaml.safe_load(CATALOGUE_FILE.read_text(encoding="utf-8"))
    return {name: CheckSpec(name=name, **spec) for name, spec in raw.items()}


def check_names() -> list[str]:
    return sorted(catalogue())
