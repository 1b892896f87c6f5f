"""A target's URL checked as it is resolved, so a mistake the driver would report from
deep inside a probe (`ValueError: invalid literal for int()`) is one line naming the
profile and the key. The line never shows the URL itself, and quotes a bad port only
where it cannot be part of the password.

A password holding `@`, `/`, `?` or `#` must be percent-encoded (a `${VAR}` in the
user:password part is): unencoded, the readers disagree on where it ends. SQLAlchemy
ends it at the first `@`, libpq and redis-py (`urllib.parse`) at the last `@` of the
authority, which ends at the first `/`, `?` or `#`; masking (`secrets.mask_url`) reads it
as the latter. A port after the password is quoted only when no `@` follows it: with one,
the "port" may be the middle of a password that held `@` and `/`.
"""

from __future__ import annotations

import re
import urllib.parse

from opslib.errors import ProfileError

# SQLAlchemy's reading of a database URL up to its port (sqlalchemy.engine.url): the
# user and password end at the first `@`
_DATABASE_AUTHORITY = re.compile(
    r"^[\w+]+://(?P<userinfo>[^:/]*(?::[^@]*)?@)?(?:\[[^/?]+\]|[^/:?]*)?(?::(?P<port>[^/?]*))?"
)
# the authority as RFC 3986 (and masking) reads it: up to the first `/`, `?` or `#`
_AUTHORITY = re.compile(r"^[^:/?#]+://(?P<authority>[^/?#]*)")
_DATABASE_EXAMPLE = "postgresql://user:password@host:5432/database or sqlite:///file.db"
_ENCODE_PASSWORD = "a password holding '@', '/', '?' or '#' must be percent-encoded"
_MAX_PORT = 65535


def check_database_url(url: str, where: str) -> None:
    """Refuse a database URL SQLAlchemy cannot read, or reads otherwise than its
    authority says (an unencoded `@`, `/`, `?` or `#` in the password), or whose port
    (after the host, or libpq's `?port=`) is not a number from 1 to 65535; `where` names
    the profile and key."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    if not url:  # resolved to nothing: the target is left off, not wrong
        return
    database = _DATABASE_AUTHORITY.match(url)
    if database is None:
        raise ProfileError(f"{where}: not a database URL such as {_DATABASE_EXAMPLE}")
    userinfo = database.group("userinfo")
    authority = _AUTHORITY.match(url)
    if userinfo and (
        authority is None
        or authority.group("authority").count("@") != 1
        or not authority.group("authority").startswith(userinfo)
    ):
        raise ProfileError(f"{where}: {_ENCODE_PASSWORD}")
    _check_port(database.group("port"), where, shown=_port_shown(url, userinfo is not None))
    try:
        query = make_url(url).query
    except (ArgumentError, ValueError):
        raise ProfileError(f"{where}: not a database URL such as {_DATABASE_EXAMPLE}") from None
    ports = query.get("port", ())
    for port in (ports,) if isinstance(ports, str) else ports:
        for each in port.split(","):  # libpq: one port per host
            _check_port(each, where, shown=True)


def check_redis_url(url: str, where: str) -> None:
    """Refuse a Redis URL whose port is not a number from 1 to 65535, as redis-py
    (`urllib.parse`) reads it: the password ends at the last `@` before the path."""
    _, at, host = urllib.parse.urlsplit(url).netloc.rpartition("@")
    _check_port(host.rpartition("]")[2].partition(":")[2], where, shown=_port_shown(url, bool(at)))


def _port_shown(url: str, after_password: bool) -> bool:
    """Whether the port may be quoted: it stands after the user and password, and no
    `@` follows the authority (else the password may run past it, unencoded)."""
    authority = _AUTHORITY.match(url)
    rest = url[authority.end() :] if authority else url
    return after_password and "@" not in rest


def _check_port(port: str | None, where: str, *, shown: bool) -> None:
    """A port ('' or None: none given) from 1 to 65535; quoted only when `shown`."""
    if not port:
        return
    if port.isdigit() and 0 < int(port) <= _MAX_PORT:
        return
    if not shown:  # perhaps part of a password with an unencoded '/', '?', '#' or '@'
        raise ProfileError(
            f"{where}: the part after the host's ':' is not a port number ({_ENCODE_PASSWORD})"
        )
    problem = "is not a number" if not port.isdigit() else f"is not from 1 to {_MAX_PORT}"
    raise ProfileError(f"{where}: port {port!r} {problem}")
