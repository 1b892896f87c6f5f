"""Loading a profile: find it, parse it, validate it, and cross-check what the schema
alone cannot (check names, labels, file sets). Every problem is one line naming the
file and the key, and quoting nothing else of the file: `--profile` takes any path, and
an error must not print a file that is no profile (`--profile /etc/shadow`)."""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from opslib import paths
from opslib.checks.catalogue import catalogue
from opslib.errors import ProfileError
from opslib.profiles.profile import Profile
from opslib.profiles.yaml_files import describe_validation, is_name, parse_yaml, read_text

PROFILE_SUFFIXES = (".yaml", ".yml")


def available_profiles() -> list[str]:
    return sorted(p.stem for p in paths.profiles_dir().glob("*.yaml"))


def default_profile_name() -> str:
    return os.environ.get("OPSLIB_PROFILE") or "demo"


def is_profile_path(name_or_path: str) -> bool:
    """How `--profile` and a schedule entry are read: a YAML file name or a path, else
    the name of a profile in parameters/profiles/."""
    return name_or_path.endswith(PROFILE_SUFFIXES) or os.sep in name_or_path


def locate_profile(name_or_path: str, base: Path | None = None) -> Path:
    """The profile's file. A relative path is taken from `base`: the current directory
    unless given, the project root for a schedule entry (cron runs from there)."""
    if is_profile_path(name_or_path):
        path = ((base or Path.cwd()) / Path(name_or_path).expanduser()).resolve()
        if not path.is_file():
            raise ProfileError(f"profile file {name_or_path} does not exist")
        if path.suffix not in PROFILE_SUFFIXES:
            raise ProfileError(f"profile file {name_or_path}: a profile is a .yaml or .yml file")
        return path
    path = paths.profiles_dir() / f"{name_or_path}.yaml"
    if not path.is_file():
        known = available_profiles()
        close = difflib.get_close_matches(name_or_path, known, n=3)
        hint = f"did you mean {', '.join(close)}?" if close else f"known: {', '.join(known)}"
        raise ProfileError(f"no profile named {name_or_path!r} in parameters/profiles/ ({hint})")
    return path


def load_profile(name_or_path: str | None = None, base: Path | None = None) -> Profile:
    """Load and validate a profile by name (`parameters/profiles/NAME.yaml`) or path
    (relative ones from `base`, see `locate_profile`).

    Every problem is a `ProfileError` whose message names the file and the key.
    """
    path = locate_profile(name_or_path or default_profile_name(), base)
    shown = paths.shown(path, paths.project_root())
    text = read_text(path, shown, ProfileError)
    data = parse_yaml(text, shown, ProfileError)
    if not isinstance(data, dict):
        raise ProfileError(f"{shown}: a profile is a mapping of keys, got {type(data).__name__}")
    data.setdefault("name", path.stem)
    try:
        profile = Profile.model_validate(data)
    except ValidationError as exc:
        raise ProfileError(f"{shown}: {describe_validation(exc, text=text)}") from None
    _check_names(profile, shown)
    _check_file_sets(profile, shown)
    _check_labels(profile, shown)
    profile._source = path.resolve()
    return profile


def _check_names(profile: Profile, shown: str) -> None:
    """Every check a threshold or a severity condition names exists (a condition's
    label too)."""
    known_checks = set(catalogue())
    unknown = sorted(map(_named, {key.partition("[")[0] for key in profile.checks} - known_checks))
    if unknown:
        raise ProfileError(
            f"{shown}: unknown check {', '.join(f'checks.{n}' for n in unknown)} "
            f"(known: {', '.join(sorted(known_checks))})"
        )
    # a condition is a value: named by its place, not quoted
    unnamed = sorted(
        f"severity.{level}[{index}]"
        for level, conditions in profile.severity.items()
        for index, condition in enumerate(conditions)
        if not any(char in (check := condition.partition("=")[0].strip()) for char in "*?")
        and not check.startswith("action:")
        and (
            check.partition("[")[0] not in known_checks or _wrong_label(profile, check) is not None
        )
    )
    if unnamed:
        raise ProfileError(f"{shown}: no such check in {', '.join(unnamed)}")


def _check_file_sets(profile: Profile, shown: str) -> None:
    """The file sets `workbooks:` names exist under `files:`."""
    if profile.workbooks is None:
        return
    sets = profile.workbooks
    missing = [
        f"workbooks.{key}"
        for key, name in (
            ("inputs", sets.inputs),
            ("mapping", sets.mapping),
            ("reports", sets.reports),
        )
        if name is not None and name not in profile.files
    ]
    if missing:
        raise ProfileError(
            f"{shown}: {', '.join(missing)}: no such file set under files: "
            f"(known: {', '.join(map(_named, profile.files)) or 'none'})"
        )


def _check_labels(profile: Profile, shown: str) -> None:
    """A threshold for one result, `checks.CHECK[label]`, names a label it carries."""
    mislabelled = [
        f"checks.{_named(key)} (known: {', '.join(sorted(map(_named, known))) or 'none'})"
        for key in profile.checks
        if (known := _wrong_label(profile, key)) is not None
    ]
    if mislabelled:
        raise ProfileError(
            f"{shown}: no such result to set thresholds for: {'; '.join(mislabelled)}"
        )


def _named(key: str) -> str:
    """A key as an error may quote it: itself if it is a name, else no part of it."""
    return key if is_name(key) else "(a key that is not a name)"


def _wrong_label(profile: Profile, key: str) -> set[str] | None:
    """For `check[label]` naming a label the check's results never carry: the labels
    they do carry. None when `key` has no label, a right one, or one only the target
    knows (see `labels`)."""
    check, bracket, rest = key.partition("[")
    known = labels(profile, check) if bracket else None
    return known if known is not None and rest.rstrip("]") not in known else None


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
