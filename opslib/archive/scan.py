"""`opslib archive scan`: look through an archive for secrets and for files others can read.

For an operator who inherits an archive written before masking covered a case (or by
another tool): every secret the profiles resolve now, in each form text can carry it
(plain, HTML-escaped, percent-encoded), and any URL with a password that is not masked,
in every file under the archive, the ledger's bytes included. A finding names the file,
the profile key the secret came from and how often, never the secret.
"""

from __future__ import annotations

import re
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from opslib.errors import OpslibError
from opslib.profiles import Profile
from opslib.profiles.secrets import MASK, forms, known_secrets

_CHUNK = 1 << 20
# a URL's password that is not the mask: `scheme://user:password@`
_CLEAR_URL_PASSWORD = re.compile(
    rb"(?<![a-z0-9+.-])[a-z][a-z0-9+.-]*://[^:/@\s\"'<>]*:(?!" + re.escape(MASK.encode()) + rb"@)"
    rb"[^@\s\"'<>]+@",
    re.I,
)


@dataclass(frozen=True)
class Finding:
    path: Path
    what: str  # the profile key a secret came from, or "a URL password"
    count: int


def secrets_by_key(profiles: Iterable[Profile]) -> tuple[dict[str, str], list[str]]:
    """Each secret the profiles resolve, mapped to the first `profile: key` that yields it,
    and a line for each reference that could not be resolved here (its variable unset)."""
    found: dict[str, str] = {}
    unresolved: list[str] = []
    for profile in profiles:
        for key, raw in profile.references():
            before = known_secrets()
            try:
                profile.expand(raw, key)
            except OpslibError as exc:
                unresolved.append(str(exc))
                continue
            for secret in known_secrets() - before:
                found.setdefault(secret, f"profile {profile.name}: {key}")
    return found, unresolved


def _chunks(path: Path, overlap: int) -> Iterator[tuple[bytes, int]]:
    """The file in 1 MiB pieces, each with up to `overlap` bytes of the piece before (and
    their number), so a secret across a boundary is seen, and counted once."""
    with open(path, "rb") as handle:
        tail = b""
        while piece := handle.read(_CHUNK):
            yield tail + piece, len(tail)
            tail = piece[-overlap:] if overlap else b""


def scan_file(path: Path, secrets: dict[str, str]) -> list[Finding]:
    """What of `secrets` (and which unmasked URL passwords) `path` holds."""
    patterns = {
        re.compile(re.escape(form.encode())): where
        for secret, where in secrets.items()
        for form in forms(secret)
    }
    patterns[_CLEAR_URL_PASSWORD] = "a URL password"
    overlap = max((len(pattern.pattern) for pattern in patterns), default=0)
    counts: dict[str, int] = {}
    for chunk, seen in _chunks(path, overlap):
        for pattern, where in patterns.items():
            # a match ending inside the carried-over bytes was counted with the last piece
            hits = sum(1 for match in pattern.finditer(chunk) if match.end() > seen)
            if hits:
                counts[where] = counts.get(where, 0) + hits
    return [Finding(path, what, count) for what, count in counts.items()]


def readable_by_others(root: Path, group_allowed: bool) -> list[Path]:
    """Files and folders under `root` (and `root`) that someone besides the owner (or
    the group, when it is allowed) can read or enter."""
    mask = 0o007 if group_allowed else 0o077
    return [
        path
        for path in [root, *root.rglob("*")]
        if not path.is_symlink() and stat.S_IMODE(path.stat().st_mode) & mask
    ]


def scan(root: Path, secrets: dict[str, str]) -> list[Finding]:
    return [
        finding
        for path in sorted(root.rglob("*"))
        if path.is_file() and not path.is_symlink()
        for finding in scan_file(path, secrets)
    ]
