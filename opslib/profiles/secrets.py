"""Secrets: resolved from `${VAR}` references only when used, remembered, and masked
wherever text leaves opslib.

Profiles name secrets as `${ENV_VAR}` references, expanded by `expand` when a probe needs
them. Every value resolved from the environment is registered here, unless its variable
names a location (`*_DIR`, `*_HOME`, `*_PATH`, `*_DB`: a database file; a password in a
URL is masked wherever it appears) or the value is too short to tell from ordinary words.
The secret parts of an expanded URL are registered on their own as well (its password,
its `?password=`, `?access_token=`... values): a log line or a driver's error may quote
the password without the rest of the DSN. `scrub` then masks them, in their plain,
HTML-escaped, URL-encoded and JSON-escaped forms, wherever text leaves opslib: check
summaries, exception messages, the executed notebook before it is archived.
"""

from __future__ import annotations

import html
import json
import os
import re
import urllib.parse
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from opslib.errors import ProfileError

MASK = "***"
# Shorter values, even a URL's password, are not registered on their own: masking a
# three-letter `dev` would garble every `development` of a report and the base64 charts
# in it. A URL carrying one is still masked whole by `mask_url`.
_MIN_SECRET_LENGTH = 6
_LOCATION_SUFFIXES = ("_DIR", "_HOME", "_PATH", "_DB")
# what names a secret: a variable, a parameter's key, a command-line option, a URL's
# query parameter (the one definition, so `?pwd=` is masked wherever `PWD=` would be)
SECRET_NAME = r"(?i:pass|pwd|secret|token|key|credential|auth|dsn)"
_SECRET_KEY = re.compile(SECRET_NAME)
# `scheme://`, anchored at the scheme's first letter: without the lookbehind a long run
# of letters (a base64 image in a report) is rescanned from every position, quadratically
URL_SCHEME = r"(?<![a-z0-9+.-])[a-z][a-z0-9+.-]*://"
# A password runs from the user's `:` to the LAST `@` of the authority, which ends at the
# first `/`, `?`, `#` or space: redis-py (`urllib.parse`) reads `redis://:p@ss@host` as
# password `p@ss`, and `http://host:8888/tree/x@y` has none.
URL_AUTHORITY_ENDS = r"/?#\s"
_URL_PASSWORD = re.compile(
    rf"(?P<head>{URL_SCHEME}[^:/@\s]*:)(?P<pw>[^{URL_AUTHORITY_ENDS}]+)(?=@)", re.I
)
_URL = re.compile(rf"{URL_SCHEME}[^\s'\"<>]+", re.I)
# In a URL: `?password=x`, `&sslpassword=x`, `&access_token=x`; after `;` as well, which
# ends the `&amp;` of an HTML-escaped URL. Only `&` ends the value (a `;` may be part of
# a password), or the `#` of a fragment.
URL_SECRET_PARAMETER = rf"[?&;](?P<name>[\w.-]*?{SECRET_NAME}[\w.-]*)="
_URL_SECRET_PARAMETER = re.compile(rf"(?P<head>{URL_SECRET_PARAMETER})(?P<value>[^&#]+)")

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
    """The ways a secret can appear in text: as is, HTML-escaped, percent-encoded, and
    JSON-escaped as a notebook or a JSON log writes it (`\\"`, `\\\\`, a non-ASCII
    letter as is or as `\\uXXXX`), for whatever reads such a file as text."""
    return {
        secret,
        html.escape(secret),
        html.escape(secret, quote=False),
        urllib.parse.quote(secret, safe=""),
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
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
    the value of each secret-named query parameter, as written and decoded; those shorter
    than any other secret are left to `mask_url` (see `_MIN_SECRET_LENGTH`)."""
    parts = [(match.group("pw"), "password") for match in _URL_PASSWORD.finditer(url)]
    parts += [
        (parameter.group("value"), parameter.group("name"))
        for match in _URL.finditer(url)
        for parameter in _URL_SECRET_PARAMETER.finditer(match.group())
    ]
    for written, name in parts:
        for form in {written, urllib.parse.unquote(written), urllib.parse.unquote_plus(written)}:
            if len(form) >= _MIN_SECRET_LENGTH:
                register_secret(form, name=name)


# an image inlined in a report: base64 cannot carry a secret in clear, and a short one
# (`REDIS_PASSWORD=abc`) replaced inside it would break the chart
_INLINE_IMAGE = re.compile(r"(data:image/[\w.+-]+;base64,[A-Za-z0-9+/=\s]+)")


def scrub(text: str, secrets: Iterable[str] | None = None) -> str:
    """Text with every registered (or given) secret and URL password masked, except
    inside inlined base64 images."""
    every_form = {form for secret in set(secrets or ()) | _secrets for form in forms(secret)}
    ordered = sorted(every_form, key=len, reverse=True)
    pieces = _INLINE_IMAGE.split(text)  # odd indexes are the images
    for index in range(0, len(pieces), 2):
        for form in ordered:
            pieces[index] = pieces[index].replace(form, MASK)
        pieces[index] = mask_url(pieces[index])
    return "".join(pieces)


def scrub_values(node: Any) -> Any:
    """A copy of a JSON-like structure with every string *value* scrubbed (but images);
    keys are left alone, so a secret that happens to equal a key cannot break the structure. Tuples
    (a query's rows, an action's arguments) and sets are values too: the audit row once
    kept them unscrubbed."""
    if isinstance(node, str):
        return scrub(node)
    if isinstance(node, Mapping):
        return type(node)(
            {
                # a notebook's image outputs are base64 (see _INLINE_IMAGE)
                key: value if str(key).startswith("image/") else scrub_values(value)
                for key, value in node.items()
            }
        )
    if isinstance(node, list):
        return [scrub_values(item) for item in node]
    if isinstance(node, tuple):
        items = [scrub_values(item) for item in node]
        return type(node)(*items) if hasattr(node, "_fields") else tuple(items)
    if isinstance(node, set | frozenset):
        return type(node)(scrub_values(item) for item in node)
    return node


# `--password=x`, `--api-key x`, `PGPASSWORD=x`, `password=x` (a keyword DSN) and
# `Bearer x` on a command line
_SECRET_ARGUMENT = re.compile(
    rf"(?P<head>(?:(?<=[\s'\"])|^)(?:--?[\w-]*?{SECRET_NAME}[\w-]*(?:=|\s+)"
    rf"|\w*{SECRET_NAME}\w*=|(?i:bearer)\s+))(?P<value>[^\s'\"-][^\s'\"]*)"
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
