"""Reading a YAML file a person edits (a profile, the schedule, the retention policy) and
saying what is wrong with it in one line: the file, the line or the key, the problem. The
loaders share it so a mistake reads the same whichever file it is in.

A profile path can name any file (`--profile /etc/shadow`), so a YAML error quotes none
of the file's text, and a profile's validation errors (`describe_validation` given the
file's text) quote no value and no key that is not a name: the line says where instead.
A file a person edits is small: one whose aliases expand to a billion values, or that
nests deeper than any configuration does, is refused before anything walks it.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Collection, Iterator
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

# what a key a person wrote looks like: a name, or `check[label]`
_NAME = re.compile(r"[A-Za-z0-9_][\w.-]{0,63}(?:\[[\w. -]{1,64}\])?")
# a quoted part of a message, backslash escapes (a repr's) included; of a YAML error, kept
# only when it is a token's name or a punctuation mark
_QUOTED = re.compile(r"\s*('(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\")")
_TOKEN = re.compile(r"'(?:<[\w ]+>|[^\w\s])'")
_SHOWN_PROBLEMS = 5
_MAX_VALUES = 100_000  # once aliases are expanded; a large profile holds a few hundred
_MAX_DEPTH = 50


class _Oversized(Exception):
    """What makes a parsed file too big to validate."""


def read_text(path: Path, shown: str, error: type[Exception]) -> str:
    """The file's text; `error` naming the file (as `shown`) when it cannot be read."""
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise error(f"{shown}: cannot read ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise error(f"{shown}: not a UTF-8 text file") from None


def parse_yaml(text: str, shown: str, error: type[Exception]) -> Any:
    """`text` parsed; `error` naming the file and the line when it is not valid YAML
    (what the parser quotes of the text, an alias or a tag, is left out)."""
    try:
        data = yaml.safe_load(text)
        _measure(data, 0, {}, set())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}:" if mark else ""
        problem = getattr(exc, "problem", None) or "not valid YAML"
        problem = _QUOTED.sub(lambda m: m.group() if _TOKEN.fullmatch(m.group(1)) else "", problem)
        raise error(f"{shown}:{where} {problem}") from None
    except RecursionError:  # the parser's own recursion, thousands of levels down
        raise error(f"{shown}: nested deeper than {_MAX_DEPTH} levels") from None
    except _Oversized as exc:
        raise error(f"{shown}: {exc}") from None
    return data


def _measure(
    node: Any, depth: int, seen: dict[int, tuple[int, int]], open_: set[int]
) -> tuple[int, int]:
    """(values, levels) of `node` with every alias expanded, counted once per shared
    object, so a billion laughs costs its few anchors; `_Oversized` past the limits."""
    if not isinstance(node, dict | list):
        return 1, 0
    if id(node) in open_:
        raise _Oversized("an alias refers to the mapping or list that holds it")
    if depth >= _MAX_DEPTH:
        raise _Oversized(f"nested deeper than {_MAX_DEPTH} levels")
    if id(node) not in seen:
        open_.add(id(node))
        children = [*node.keys(), *node.values()] if isinstance(node, dict) else node
        measured = [_measure(child, depth + 1, seen, open_) for child in children]
        open_.discard(id(node))
        seen[id(node)] = (
            1 + sum(values for values, _ in measured),
            1 + max((levels for _, levels in measured), default=0),
        )
    values, levels = seen[id(node)]
    if values > _MAX_VALUES:
        raise _Oversized(f"more than {_MAX_VALUES} values once its aliases are expanded")
    if depth + levels > _MAX_DEPTH:
        raise _Oversized(f"nested deeper than {_MAX_DEPTH} levels")
    return values, levels


def read_yaml(path: Path, shown: str, error: type[Exception]) -> Any:
    """The file read and parsed; every problem is one `error` line starting `shown: `."""
    return parse_yaml(read_text(path, shown, error), shown, error)


def is_name(key: object) -> bool:
    """Whether `key` looks like a key a person wrote, and so may be quoted back."""
    return bool(_NAME.fullmatch(str(key)))


def describe_validation(
    exc: ValidationError, keys: Collection[str] = (), *, text: str | None = None
) -> str:
    """pydantic's errors as `key: problem; ...`: an unknown or missing key named as such
    (an unknown one with `keys`, the ones allowed, when given), a value's problem without
    pydantic's "Value error, " prefix; the first few, and how many more.

    With `text`, the file's own text, no value is quoted and a key that is not a name is
    given by its line instead (see the module's docstring). The text is composed once,
    and only when an error shown needs a line: once per error, a file with thousands of
    bad entries took minutes."""
    allowed = f" (keys: {', '.join(keys)})" if keys else ""
    composed = (
        functools.cache(functools.partial(yaml.compose, text, Loader=yaml.SafeLoader))
        if text is not None
        else None
    )
    errors = exc.errors()
    problems = [_describe(error, allowed, composed) for error in errors[:_SHOWN_PROBLEMS]]
    more = len(errors) - _SHOWN_PROBLEMS
    return "; ".join(problems) + (f"; and {more} more" if more > 0 else "")


def _describe(error: Any, allowed: str, composed: Callable[[], yaml.Node | None] | None) -> str:
    """One pydantic error as `key: problem`; with `composed` (the file's YAML tree, made
    when first asked for), a value's problem quoting none of it, a key that is not a
    name given by its line."""
    loc = error["loc"]
    key = ".".join(str(part) for part in loc)
    problem = error["msg"].removeprefix("Value error, ")
    if composed is not None:
        problem = _without_value(problem, error)
        if not all(isinstance(part, int) or is_name(part) for part in loc):
            line = _line(composed(), loc)
            if error["type"] == "extra_forbidden":
                problem = "unknown key that is not a name"
            return f"line {line}: {problem}" if line else problem
    if error["type"] == "extra_forbidden":
        return f"unknown key {key!r}{allowed}"
    if error["type"] == "missing":
        return f"missing key {key!r}"
    return f"{key}: {problem}"


def _without_value(problem: str, error: Any) -> str:
    """A validator's message (pydantic's own never quote the input) with each quoted
    part that holds any of the value it was given, or lies within it, replaced: a
    message quotes `str()` of a list or the `repr()` of a string, escapes and all, so a
    quoted part is rarely the value itself."""
    if error["type"] != "value_error":
        return problem
    given = error.get("input")
    written = {
        form.casefold()
        for text in (*_strings(given), str(given))
        for form in (text, repr(text)[1:-1])
        if form
    }

    def hide(match: re.Match[str]) -> str:
        inner = match.group(1)[1:-1].casefold()
        holds_value = any(form in inner or inner in form for form in written)
        return " the value" if inner and holds_value else match.group()

    return _QUOTED.sub(hide, problem).lstrip()


def _strings(node: Any) -> Iterator[str]:
    """Every key and value of a parsed YAML node, as text."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield str(key)
            yield from _strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from _strings(item)
    elif node is not None:
        yield str(node)


def _line(node: yaml.Node | None, loc: tuple[int | str, ...]) -> int | None:
    """The line of the deepest part of `loc` the composed YAML holds."""
    line = None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            pair = next((p for p in node.value if str(p[0].value) == str(part)), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            pair = (node.value[part], node.value[part]) if part < len(node.value) else None
        else:
            pair = None
        if pair is None:
            break
        line, node = pair[0].start_mark.line + 1, pair[1]
    return line
