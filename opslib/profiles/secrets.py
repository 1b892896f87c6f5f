"""Secrets: resolved from `${VAR}` references only when used, remembered, and masked
wherever text leaves opslib.

Profiles name secrets as `${ENV_VAR}` references, expanded by `expand` when a probe needs
them. Every value resolved from the environment is registered here, unless its variable
names a location (`*_DIR`, `*_HOME`, `*_PATH`, `*_DB`: a database file; a password in a
URL is masked wherever it appears) or the value is too short to tell from ordinary words.
The secret parts of an expanded URL are registered on their own as well (its password,
its `?password=`, `?access_token=`... values): a log line or a driver's error may quote
the password without the rest of the DSN. `scrub` then masks them, in their plain,
HTML-escaped and URL-encoded forms, wherever text leaves opslib: check summaries,
exception messages, the executed notebook before it is archived.
"""

from __future__ import annotations

import html
import os
import re
import urllib.parse
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from opslib.errors import ProfileError

MASK = "***"
_MIN_SECRET_LENGTH = 6
# A URL's password is registered whatever its length, except one or two characters:
# masking those would garble every word of every report, and they protect nothing.
_MIN_URL_PART_LENGTH = 3
_LOCATION_SUFFIXES = ("_DIR", "_HOME", "_PATH", "_DB")
_SECRET_KEY = re.compile(r"pass|secret|token|key|credential|auth|dsn", re.IGNORECASE)
# what names a secret in a command-line option or a URL's query parameter
_SECRET_WORD = r"(?i:pass|secret|token|key|credential)"
# The lookbehind anchors the scheme at its first letter: without it a long run of letters
# (a base64 image in a report) is rescanned from every position, quadratically.
_URL_PASSWORD = re.compile(
    r"(?<![a-z0-9+.-])(?P<head>[a-z][a-z0-9+.-]*://[^:/@\s]*:)(?P<pw>[^@\s]+)(?=@)", re.I
)
# a URL as text carries one, anchored like `_URL_PASSWORD`
_URL = re.compile(r"(?<![a-z0-9+.-])[a-z][a-z0-9+.-]*://[^\s'\"<>]+", re.I)
# in a URL: `?password=x`, `&sslpassword=x`, `&access_token=x`; after `;` as well, which
# ends the `&amp;` of an HTML-escaped URL
_URL_SECRET_PARAMETER = re.compile(
    rf"(?P<head>[?&;](?P<name>[\w.-]*?{_SECRET_WORD}[\w.-]*)=)(?P<value>[^&#;]+)"
)

_secrets: set[str] = set()


def is_location_variable(name: str) -> bool:
    """Variables that name folders or files (`*_DIR`, `*_HOME`, `*_PATH`, `*_DB`) are shown."""
    return name.upper().endswith(_LOCATION_SUFFIXES)


def register_secret(value: str, *, name: str = "") -> None:
    """Remember a resolved secret so `scrub` can remove it from any later text. Short
    values are only taken from variables whose name says they are secret: masking a
    four-letter user name would garble every word it appears in."""
    if value and (len(value) >= _MIN_SECRET_LENGTH or _SECRET_KEY.search(name)):
        _secrets.add(value)


def known_secrets() -> frozenset[str]:
    return frozenset(_secrets)


def forms(secret: str) -> set[str]:
    """The ways a secret can appear in text: as is, HTML-escaped, percent-encoded."""
    return {
        secret,
        html.escape(secret),
        html.escape(secret, quote=False),
        urllib.parse.quote(secret, safe=""),
    }


def mask_url(url: str) -> str:
    """A connection URL with its password and secret query parameters replaced, safe
    to print."""
    url = _URL_PASSWORD.sub(lambda m: m.group("head") + MASK, url)
    return _URL.sub(
        lambda m: _URL_SECRET_PARAMETER.sub(lambda p: p.group("head") + MASK, m.group()), url
    )


def register_url_secrets(url: str) -> None:
    """Register the secret parts of `url` on their own: the password of its userinfo and
    the value of each secret-named query parameter, as written and decoded (a password
    counts as secret by its name, so a short one is registered too)."""
    parts = [(match.group("pw"), "password") for match in _URL_PASSWORD.finditer(url)]
    parts += [
        (parameter.group("value"), parameter.group("name"))
        for match in _URL.finditer(url)
        for parameter in _URL_SECRET_PARAMETER.finditer(match.group())
    ]
    for written, name in parts:
        for form in {written, urllib.parse.unquote(written), urllib.parse.unquote_plus(written)}:
            if len(form) >= _MIN_URL_PART_LENGTH:
                register_secret(form, name=name)


def scrub(text: str, secrets: Iterable[str] | None = None) -> str:
    """Text with every registered (or given) secret and URL password masked."""
    every_form = {form for secret in set(secrets or ()) | _secrets for form in forms(secret)}
    for form in sorted(every_form, key=len, reverse=True):
        text = text.replace(form, MASK)
    return mask_url(text)


def scrub_values(node: Any) -> Any:
    """A copy of a JSON-like structure with every string *value* scrubbed; keys are left
    alone, so a secret that happens to equal a key cannot break the structure."""
    if isinstance(node, Mapping):
        return type(node)({key: scrub_values(value) for key, value in node.items()})
    if isinstance(node, list):
        return [scrub_values(item) for item in node]
    if isinstance(node, str):
        return scrub(node)
    return node


# `--password=x`, `--api-key x`, `PGPASSWORD=x`, `password=x` (a keyword DSN) and
# `Bearer x` on a command line
_SECRET_ARGUMENT = re.compile(
    rf"(?P<head>(?:(?<=[\s'\"])|^)(?:--?[\w-]*?{_SECRET_WORD}[\w-]*(?:=|\s+)"
    rf"|\w*{_SECRET_WORD}\w*=|(?i:bearer)\s+))(?P<value>[^\s'\"-][^\s'\"]*)"
)
# the MySQL clients take their password glued to -p: `mysql -uroot -pS3cret db`
_MYSQL_PASSWORD = re.compile(r"(?P<head>(?<=\s)-p)(?P<value>\S+)")
_MYSQL_CLIENT = re.compile(r"^(?:\S*/)?(?:mysql|mariadb)\w*(?:\s|$)")


def command_line(command: str) -> str:
    """A process's command line fit for a report: secret-looking arguments and URL
    passwords masked (a process table lists other people's commands, not just ours)."""
    if _MYSQL_CLIENT.match(command):
        command = _MYSQL_PASSWORD.sub(lambda m: m.group("head") + MASK, command)
    return scrub(_SECRET_ARGUMENT.sub(lambda m: m.group("head") + MASK, command))


def redact_parameters(parameters: Mapping[str, Any]) -> dict[str, Any]:
    """Parameters fit for the ledger: secret-looking keys masked, known secrets scrubbed."""
    return {
        key: MASK if _SECRET_KEY.search(key) else scrub_values(value)
        for key, value in parameters.items()
    }


_URL_USERINFO = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://([^/]*)@")
# A default may itself hold one reference: `${SPOTS_DB:-${OPSLIB_DATA_DIR:-data}/spots.db}`.
_REFERENCE = re.compile(
    r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>(?:[^${}]|\$\{[^{}]*\})*))?\}"
)


def expand(raw: str, where: str, *, url: bool = False) -> str:
    """`raw` with its `${VAR}` references resolved from the environment now.

    A missing variable without a default is a one-line error naming `where` (the profile
    and key); resolved values are registered as secrets unless the variable names a
    location, and so are the secret parts of a URL (see `register_url_secrets`), whether
    `url` says it is one or not: `resolve_all` expands every reference without knowing.
    In a URL, a variable inside the user:password part is percent-encoded, so
    `p@ss/word` cannot be misread as a host.
    """
    userinfo = _URL_USERINFO.match(raw) if url else None
    credentials = userinfo.span(1) if userinfo else (0, 0)

    def replace(match: re.Match[str]) -> str:
        encode = credentials[0] <= match.start() < credentials[1]
        name, default = match.group("name"), match.group("default")
        value = os.environ.get(name)
        if value is None:
            if default is None:
                raise ProfileError(f"{where}: environment variable {name} is not set")
            value = _REFERENCE.sub(replace, default)
        elif not is_location_variable(name):
            register_secret(value, name=name)
        return urllib.parse.quote(value, safe="") if encode else value

    expanded = _REFERENCE.sub(replace, raw)
    register_url_secrets(expanded)
    return expanded


def references(node: Any, key: str = "") -> Iterator[tuple[str, str]]:
    """Every (key path, raw string) under `node` (a dumped profile) holding a reference."""
    if isinstance(node, dict):
        for child_key, child in node.items():
            yield from references(child, f"{key}.{child_key}" if key else str(child_key))
    elif isinstance(node, list):
        for index, child in enumerate(node):
            yield from references(child, f"{key}[{index}]")
    elif isinstance(node, str) and _REFERENCE.search(node):
        yield key, node
