"""Reading a YAML file a person edits (a profile, the schedule, the retention policy) and
saying what is wrong with it in one line: the file, the line or the key, the problem. The
loaders share it so a mistake reads the same whichever file it is in."""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError


def read_text(path: Path, shown: str, error: type[Exception]) -> str:
    """The file's text; `error` naming the file (as `shown`) when it cannot be read."""
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise error(f"{shown}: cannot read ({exc.strerror})") from None


def parse_yaml(text: str, shown: str, error: type[Exception]) -> Any:
    """`text` parsed; `error` naming the file and the line when it is not valid YAML."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}:" if mark else ""
        problem = getattr(exc, "problem", None) or "not valid YAML"
        raise error(f"{shown}:{where} {problem}") from None


def read_yaml(path: Path, shown: str, error: type[Exception]) -> Any:
    """The file read and parsed; every problem is one `error` line starting `shown: `."""
    return parse_yaml(read_text(path, shown, error), shown, error)


def describe_validation(exc: ValidationError, keys: Collection[str] = ()) -> str:
    """pydantic's errors as `key: problem; ...`: an unknown or missing key named as such
    (an unknown one with `keys`, the ones allowed, when given), a value's problem without
    pydantic's "Value error, " prefix."""
    allowed = f" (keys: {', '.join(keys)})" if keys else ""
    problems = []
    for error in exc.errors():
        key = ".".join(str(part) for part in error["loc"])
        if error["type"] == "extra_forbidden":
            problems.append(f"unknown key {key!r}{allowed}")
        elif error["type"] == "missing":
            problems.append(f"missing key {key!r}")
        else:
            problems.append(f"{key}: {error['msg'].removeprefix('Value error, ')}")
    return "; ".join(problems)
