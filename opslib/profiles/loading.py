"""Loading a profile: find it, parse it, validate it, and cross-check what the schema
alone cannot (check names, labels, file sets). Every problem is one line naming the
file and the key."""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from opslib import paths
from opslib.checks.catalogue import catalogue, check_names
from opslib.errors import ProfileError
from opslib.profiles.profile import Profile, display_path


def available_profiles() -> list[str]:
    return sorted(p.stem for p in paths.profiles_dir().glob("*.yaml"))


def default_profile_name() -> str:
    return os.environ.get("OPSLIB_PROFILE") or "demo"


def _locate(name_or_path: str) -> Path:
    if name_or_path.endswith((".yaml", ".yml")) or os.sep in name_or_path:
        path = Path(name_or_path).expanduser().resolve()
        if not path.is_file():
            raise ProfileError(f"profile file {name_or_path} does not exist")
        return path
    path = paths.profiles_dir() / f"{name_or_path}.yaml"
    if not path.is_file():
        known = available_profiles()
        close = difflib.get_close_matches(name_or_path, known, n=3)
        hint = f"did you mean {', '.join(close)}?" if close else f"known: {', '.join(known)}"
        raise ProfileError(f"no profile named {name_or_path!r} in parameters/profiles/ ({hint})")
    return path


def _describe(error: dict[str, Any]) -> str:
    key = ".".join(str(part) for part in error["loc"])
    if error["type"] == "extra_forbidden":
        return f"unknown key {key!r}"
    if error["type"] == "missing":
        return f"missing key {key!r}"
    message = error["msg"].removeprefix("Value error, ")
    return f"{key}: {message}"


def load_profile(name_or_path: str | None = None) -> Profile:
    """Load and validate a profile by name (`parameters/profiles/NAME.yaml`) or path.

    Every problem is a `ProfileError` whose message names the file and the key.
    """
    path = _locate(name_or_path or default_profile_name())
    shown = display_path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "not valid YAML"
        raise ProfileError(f"{shown}:{where}: {problem}") from None
    except OSError as exc:
        raise ProfileError(f"{shown}: cannot read ({exc.strerror})") from None
    if not isinstance(data, dict):
        raise ProfileError(f"{shown}: a profile is a mapping of keys, got {type(data).__name__}")
    data.setdefault("name", path.stem)
    try:
        profile = Profile.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(_describe(error) for error in exc.errors())
        raise ProfileError(f"{shown}: {problems}") from None
    unknown = sorted({key.partition("[")[0] for key in profile.checks} - set(check_names()))
    if unknown:
        raise ProfileError(
            f"{shown}: unknown check {', '.join(f'checks.{n}' for n in unknown)} "
            f"(known: {', '.join(check_names())})"
        )
    unnamed = sorted(
        f"severity.{level}: {condition}"
        for level, conditions in profile.severity.items()
        for condition in conditions
        if not any(char in (check := condition.partition("=")[0].strip()) for char in "*?")
        and not check.startswith("action:")
        and (
            check.partition("[")[0] not in check_names()
            or (
                "[" in check
                and (known := labels(profile, check.partition("[")[0])) is not None
                and check.partition("[")[2].rstrip("]") not in known
            )
        )
    )
    if unnamed:
        raise ProfileError(f"{shown}: no such check in {'; '.join(unnamed)}")
    if profile.workbooks is not None:
        sets = profile.workbooks
        missing = [
            f"workbooks.{key}: {name}"
            for key, name in (
                ("inputs", sets.inputs),
                ("mapping", sets.mapping),
                ("reports", sets.reports),
            )
            if name is not None and name not in profile.files
        ]
        if missing:
            raise ProfileError(
                f"{shown}: no such file set under files: {'; '.join(missing)} "
                f"(known: {', '.join(profile.files) or 'none'})"
            )
    mislabelled = [
        f"checks.{key} (known: {', '.join(sorted(known)) or 'none'})"
        for key in profile.checks
        if "[" in key
        and (known := labels(profile, key.partition("[")[0])) is not None
        and key.partition("[")[2].rstrip("]") not in known
    ]
    if mislabelled:
        raise ProfileError(
            f"{shown}: no such result to set thresholds for: {'; '.join(mislabelled)}"
        )
    profile._source = path.resolve()
    return profile


def labels(profile: Profile, check: str) -> set[str] | None:
    """The labels a check's results carry, as the catalogue's `labels` names them: the
    names under a profile key, or fixed ones (None: the labels come from the target,
    so a typo cannot be caught here)."""
    source = catalogue()[check].labels
    if source is None or isinstance(source, tuple):
        return None if source is None else set(source)
    node: Any = profile
    for key in source.split("."):
        node = getattr(node, key) if node is not None else None
    return set(node or ())
