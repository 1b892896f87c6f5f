"""`opslib archive scan`: look through an archive for secrets and for files others can read.

For an operator who inherits an archive written before masking covered a case (or by
another tool): every secret the profiles resolve now, in each form text can carry it
(plain, HTML-escaped, percent-encoded, JSON-escaped), and any URL whose password or
secret query parameter is not masked, in every file under the archive, the ledger's bytes
included. A gzipped file is read unpacked and a gzipped tar (a diagnostic package) member
by member, named `package.tar.gz:member`: compressed, a secret is never seen. A finding
names the file, the profile key the secret came from and how often, never the secret.

Nothing one file or one profile does stops the scan: a file that cannot be read (or is
gone by the time it is read) is an `Unread`, a profile that does not load or resolve a
line, and the scan goes on.
"""

from __future__ import annotations

import gzip
import os
import re
import stat
import tarfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Protocol

from opslib.errors import OpslibError
from opslib.profiles import Profile, load_profile
from opslib.profiles.secrets import (
    MASK,
    URL_AUTHORITY_ENDS,
    URL_SCHEME,
    URL_SECRET_PARAMETER,
    forms,
    known_secrets,
)

_CHUNK = 1 << 20
_PACKAGES = (".tar.gz", ".tgz")
_READ_ERRORS = (OSError, EOFError, zlib.error, tarfile.TarError)
# the mask as a page may write it: as is, percent-encoded, as HTML character references
_MASKS = {*forms(MASK), *(MASK.replace("*", star) for star in ("&#42;", "&#x2a;", "&ast;"))}
_MASK = rb"(?:" + rb"|".join(re.escape(mask.encode()) for mask in sorted(_MASKS)) + rb")"
# where a URL ends in text: a space, a quote, an angle bracket
_URL_ENDS = rb"\s\"'<>"
# a URL's password that is not the mask: `scheme://user:password@`, the password up to
# the last `@` of the authority (as `secrets.mask_url` reads it)
_CLEAR_URL_PASSWORD = re.compile(
    URL_SCHEME.encode() + rb"[^:/@" + _URL_ENDS + rb"]*:(?!" + _MASK + rb"@)"
    rb"[^" + URL_AUTHORITY_ENDS.encode() + _URL_ENDS + rb"]+@",
    re.I,
)
# a URL's secret query parameter that is not the mask: `?password=x`, `&amp;token=x`
_CLEAR_URL_SECRET_PARAMETER = re.compile(
    URL_SCHEME.encode() + rb"[^?#" + _URL_ENDS + rb"]*\?[^#" + _URL_ENDS + rb"]*?"
    + URL_SECRET_PARAMETER.encode()
    + rb"(?!" + _MASK + rb"(?:[&#" + _URL_ENDS + rb"]|$))[^&#" + _URL_ENDS + rb"]+",
    re.I,
)  # fmt: skip


class _Readable(Protocol):
    """A file, a package's member, a gzip stream: what is read in pieces."""

    def read(self, size: int = -1, /) -> bytes: ...


@dataclass(frozen=True)
class Finding:
    path: Path  # a package's member as `package.tar.gz:member`
    what: str  # the profile key a secret came from, or a kind of clear URL secret
    count: int


@dataclass(frozen=True)
class Unread:
    """A file or folder the scan could not look into, and why (never its content)."""

    path: Path
    reason: str


def load_profiles(names: Iterable[str]) -> tuple[list[Profile], list[str]]:
    """The profiles that load, and a line for each that does not: one broken profile
    must not keep the others' secrets from being looked for."""
    profiles: list[Profile] = []
    problems: list[str] = []
    for name in names:
        try:
            profiles.append(load_profile(name))
        except OpslibError as exc:
            problems.append(str(exc))
    return profiles, problems


def secrets_by_key(profiles: Iterable[Profile]) -> tuple[dict[str, str], list[str]]:
    """Each secret the profiles resolve, mapped to the first `profile: key` that yields it,
    and a line for each key that could not be resolved here (its variable unset, its URL
    refused). Besides the `${VAR}` references, the database and Redis URLs themselves:
    a password written in the profile is a secret too."""
    found: dict[str, str] = {}
    unresolved: list[str] = []
    for profile in profiles:
        failed = {
            key
            for key, raw in profile.references()
            if not _attribute(found, unresolved, profile, key, partial(profile.expand, raw, key))
        }
        for kind, url in (("database", profile.database_url), ("redis", profile.redis_url)):
            key = f"targets.{kind}.url"
            if getattr(profile.targets, kind) is not None and key not in failed:
                _attribute(found, unresolved, profile, key, url)
    return found, unresolved


def _attribute(
    found: dict[str, str],
    unresolved: list[str],
    profile: Profile,
    key: str,
    resolve: Callable[[], str],
) -> bool:
    """Resolve `key` and map each secret it newly registers to it (a URL refused after
    its expansion registered its password included); False (and a line in
    `unresolved`) when it cannot be resolved."""
    before = known_secrets()
    try:
        resolve()
    except OpslibError as exc:
        unresolved.append(str(exc))
        return False
    finally:
        for secret in known_secrets() - before:
            found.setdefault(secret, f"profile {profile.name}: {key}")
    return True


def _walk(root: Path, unread: list[Unread]) -> Iterator[tuple[Path, os.stat_result]]:
    """`root` and everything under it that is not a symlink, with its mode; a folder
    that cannot be listed, or anything gone before it is looked at, is `unread`."""
    yield from _status([root], unread)
    for folder, folders, files in os.walk(root, onerror=lambda exc: _unread(exc, unread)):
        yield from _status([Path(folder, name) for name in [*folders, *files]], unread)


def _status(paths: list[Path], unread: list[Unread]) -> Iterator[tuple[Path, os.stat_result]]:
    for path in paths:
        try:
            status = path.lstat()
        except OSError as exc:
            unread.append(Unread(path, _reason(exc)))
            continue
        if not stat.S_ISLNK(status.st_mode):
            yield path, status


def archive_files(root: Path, unread: list[Unread]) -> list[Path]:
    """The regular files under `root`, in order."""
    return sorted(path for path, status in _walk(root, unread) if stat.S_ISREG(status.st_mode))


def _contents(path: Path) -> Iterator[tuple[Path, _Readable]]:
    """What `path` holds as a reader would see it: a gzip stream unpacked, a gzipped
    tar's members one by one (a gzipped member unpacked too)."""
    if path.name.endswith(_PACKAGES):
        with tarfile.open(path, "r:gz") as package:
            for member in package:
                handle = package.extractfile(member) if member.isfile() else None
                if handle is not None:
                    yield from _unpacked(Path(f"{path}:{member.name}"), handle)
    else:
        with open(path, "rb") as handle:
            yield from _unpacked(path, handle)


def _unpacked(shown: Path, handle: _Readable) -> Iterator[tuple[Path, _Readable]]:
    if shown.name.endswith(".gz"):
        with gzip.GzipFile(fileobj=handle) as stream:
            yield shown, stream
    else:
        yield shown, handle


def _chunks(stream: _Readable, overlap: int) -> Iterator[tuple[bytes, int]]:
    """The stream in 1 MiB pieces, each with up to `overlap` bytes of the piece before
    (and their number), so a secret across a boundary is seen, and counted once."""
    tail = b""
    while piece := stream.read(_CHUNK):
        yield tail + piece, len(tail)
        tail = piece[-overlap:] if overlap else b""


def _patterns(secrets: dict[str, str]) -> dict[re.Pattern[bytes], str]:
    patterns = {
        re.compile(re.escape(form.encode())): where
        for secret, where in secrets.items()
        for form in forms(secret)
    }
    patterns[_CLEAR_URL_PASSWORD] = "a URL password"
    patterns[_CLEAR_URL_SECRET_PARAMETER] = "a URL's secret parameter"
    return patterns


def _count(shown: Path, stream: _Readable, patterns: dict[re.Pattern[bytes], str]) -> list[Finding]:
    overlap = max((len(pattern.pattern) for pattern in patterns), default=0)
    counts: dict[str, int] = {}
    for chunk, seen in _chunks(stream, overlap):
        for pattern, where in patterns.items():
            # a match ending inside the carried-over bytes was counted with the last piece
            hits = sum(1 for match in pattern.finditer(chunk) if match.end() > seen)
            if hits:
                counts[where] = counts.get(where, 0) + hits
    return [Finding(shown, what, count) for what, count in counts.items()]


def readable_by_others(root: Path, group_allowed: bool) -> list[Path]:
    """Files and folders under `root` (and `root`) that someone besides the owner (or
    the group, when it is allowed) can read or enter; what vanishes meanwhile is skipped."""
    mask = 0o007 if group_allowed else 0o077
    return [path for path, status in _walk(root, []) if stat.S_IMODE(status.st_mode) & mask]


def scan(root: Path, secrets: dict[str, str], unread: list[Unread] | None = None) -> list[Finding]:
    """What of `secrets` (and which clear URL passwords and secret parameters) each file
    under `root` holds; what could not be read is added to `unread` and skipped, with
    the findings of a package's members read before it broke kept."""
    unread = [] if unread is None else unread
    patterns = _patterns(secrets)
    findings: list[Finding] = []
    for path in archive_files(root, unread):
        try:
            for shown, stream in _contents(path):
                findings += _count(shown, stream, patterns)
        except _READ_ERRORS as exc:
            unread.append(Unread(path, _reason(exc)))
    return findings


def _unread(exc: OSError, unread: list[Unread]) -> None:
    unread.append(Unread(Path(exc.filename or ""), _reason(exc)))


def _reason(exc: BaseException) -> str:
    """Why a file could not be read, in words of our own: a decompressor's message may
    quote the file's first bytes."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return "damaged, or not the gzip or tar file its name says"
