"""A target's URL checked as it is resolved, so a mistake the driver would report from
deep inside a probe (`ValueError: invalid literal for int()`) is one line naming the
profile and the key. The line never shows the URL itself, and quotes a bad port only
where it cannot be part of the password.
"""

from __future__ import annotations

import re
import urllib.parse

from opslib.errors import ProfileError

# SQLAlchemy's reading of a database URL up to its port (sqlalchemy.engine.url): the
# user and password end at the first `@`, so a port after one is never the password
_DATABASE_AUTHORITY = re.compile(
    r"^[\w+]+://(?P<userinfo>[^:/]*(?::[^@]*)?@)?(?:\[[^/?]+\]|[^/:?]*)?(?::(?P<port>[^/?]*))?"
)
_DATABASE_EXAMPLE = "postgresql://user:password@host:5432/database or sqlite:///file.db"
_MAX_PORT = 65535


def check_database_url(url: str, where: str) -> None:
    """Refuse a database URL SQLAlchemy cannot read, or whose port (after the host, or
    libpq's `?port=`) is not a number from 1 to 65535; `where` names the profile and key."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    if not url:  # resolved to nothing: the target is left off, not wrong
        return
    authority = _DATABASE_AUTHORITY.match(url)
    if authority is None:
        raise ProfileError(f"{where}: not a database URL such as {_DATABASE_EXAMPLE}")
    _check_port(authority.group("port"), where, quoted=authority.group("userinfo") is not None)
    try:
        query = make_url(url).query
    except (ArgumentError, ValueError):
        raise ProfileError(f"{where}: not a database URL such as {_DATABASE_EXAMPLE}") from None
    ports = query.get("port", ())
    for port in (ports,) if isinstance(ports, str) else ports:
        for each in port.split(","):  # libpq: one port per host
            _check_port(each, where, quoted=True)


def check_redis_url(url: str, where: str) -> None:
    """Refuse a Redis URL whose port is not a number from 1 to 65535, as redis-py
    (`urllib.parse`) reads it: the password ends at the last `@` before the path."""
    _, at, host = urllib.parse.urlsplit(url).netloc.rpartition("@")
    _check_port(host.rpartition("]")[2].partition(":")[2], where, quoted=bool(at))


def _check_port(port: str | None, where: str, *, quoted: bool) -> None:
    """A port ('' or None: none given) from 1 to 65535; `quoted`: it stands after the
    user and password, so it may be shown."""
    if not port:
        return
    if port.isdigit() and 0 < int(port) <= _MAX_PORT:
        return
    if not quoted:  # before any `@`: perhaps a password with an unencoded `/`, `?` or `#`
        raise ProfileError(
            f"{where}: the part after the host's ':' is not a port number "
            "(a password with '/', '?', '#' or '@' must be percent-encoded)"
        )
    problem = "is not a number" if not port.isdigit() else f"is not from 1 to {_MAX_PORT}"
    raise ProfileError(f"{where}: port {port!r} {problem}")
