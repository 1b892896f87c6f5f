"""Keeping secrets out of reports, logs and error messages.

Profiles name secrets as `${ENV_VAR}` references; every value resolved from the
environment is registered here (unless the variable names a location, see
`is_location_variable`) and `scrub` replaces it wherever text leaves opslib:
check summaries, exception messages, the executed notebook before it is archived.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

MASK = "***"
_MIN_SECRET_LENGTH = 4
_LOCATION_SUFFIXES = ("_DIR", "_HOME", "_PATH")
_SECRET_KEY = re.compile(r"pass|secret|token|key|credential|auth|dsn", re.IGNORECASE)
# The lookbehind anchors the scheme at its first letter: without it a long run of letters
# (a base64 image in a report) is rescanned from every position, quadratically.
_URL_PASSWORD = re.compile(
    r"(?<![a-z0-9+.-])(?P<head>[a-z][a-z0-9+.-]*://[^:/@\s]*:)(?P<pw>[^@\s]+)(?=@)", re.I
)

_secrets: set[str] = set()


def is_location_variable(name: str) -> bool:
    """Variables that name folders (`*_DIR`, `*_HOME`, `*_PATH`) are shown, not masked."""
    return name.upper().endswith(_LOCATION_SUFFIXES)


def register_secret(value: str) -> None:
    """Remember a resolved secret so `scrub` can remove it from any later text."""
    if value and len(value) >= _MIN_SECRET_LENGTH:
        _secrets.add(value)


def known_secrets() -> frozenset[str]:
    return frozenset(_secrets)


def mask_url(url: str) -> str:
    """A connection URL with its password replaced, safe to print."""
    return _URL_PASSWORD.sub(lambda m: m.group("head") + MASK, url)


def scrub(text: str, secrets: Iterable[str] | None = None) -> str:
    """Text with every registered (or given) secret and URL password masked."""
    values = sorted(set(secrets or ()) | _secrets, key=len, reverse=True)
    for value in values:
        text = text.replace(value, MASK)
    return mask_url(text)


def redact_parameters(parameters: Mapping[str, Any]) -> dict[str, Any]:
    """Parameters fit for the ledger: secret-looking keys masked, known secrets scrubbed."""
    redacted: dict[str, Any] = {}
    for key, value in parameters.items():
        if _SECRET_KEY.search(key):
            redacted[key] = MASK
        elif isinstance(value, str):
            redacted[key] = scrub(value)
        else:
            redacted[key] = value
    return redacted
