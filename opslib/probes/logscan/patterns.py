"""What an error line is about: the level words that make a line an error, rate-limit
signals, and the normalizing that folds ids (UUIDs, ULIDs, hex, Kubernetes pod names),
numbers, addresses and paths so the same failure on different items counts as one
pattern."""

from __future__ import annotations

import re

EXAMPLE_CHARS = 300

# Words whose lines need a closer look, found by plain substring search (C speed).
ERROR_WORDS = (b"ERROR", b"CRITICAL", b"FATAL")
ERROR_LEVELS = frozenset(ERROR_WORDS)
# Rate limiting, as `grep -i -E 'rate[ _-]?limit|\b429\b'` reads it (in a lower-cased
# copy of the block): each expression starts with a literal, which the engine looks for
# quickly, and checks what is around it only there.
RATE_LIMITING = (re.compile(rb"rate[ _-]?limit"), re.compile(rb"429(?<!\w429)(?!\w)"))


def lines_matching(data: bytes, patterns: tuple[re.Pattern[bytes], ...]) -> int:
    """How many lines of `data` any of `patterns` matches in."""
    starts = set()
    rfind = data.rfind
    for pattern in patterns:
        for match in pattern.finditer(data):
            starts.add(rfind(b"\n", 0, match.start()) + 1)
    return len(starts)


def line_starts(data: bytes, words: tuple[bytes, ...]) -> list[int]:
    """The start offsets of the lines of `data` containing any of `words`, in order,
    each once (one substring search per word)."""
    starts = set()
    find, rfind = data.find, data.rfind
    for word in words:
        position = find(word)
        while position != -1:
            starts.add(rfind(b"\n", 0, position) + 1)
            position = find(word, position + len(word))
    return sorted(starts)


CACHE_LIMIT = 20_000  # messages whose ids have no digits (names) fill it
# a message's digits as 1 for the normalizing cache; 0 kept where `0x` is in the message,
# the one digit `_PLACEHOLDERS` write out
DIGITS_AS_ONE = bytes.maketrans(b"0123456789", b"1111111111")
NONZERO_AS_ONE = bytes.maketrans(b"23456789", b"11111111")
_UUID = rb"\b[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}\b"
UUID_BYTES = re.compile(_UUID)

# Kubernetes names a pod after its owner and adds random characters from an alphabet
# without vowels (and, here, any digit: the normalizing cache writes digits as 1):
# `worker-7d9f8c6b5-x2kqz` (deployment: template hash, then 5), `fluentd-x2kqz` (5, which
# must hold a digit and a letter, or `proxy-https` would be a pod). The owner's name stays.
_POD_CHAR = "[0-9bcdfghjklmnpqrstvwxz]"
_POD = (
    rf"-(?<=[a-z0-9]-)(?:{_POD_CHAR}{{6,10}}-{_POD_CHAR}{{5}}"
    rf"|(?=[0-9a-z]{{0,4}}\d)(?=[0-9a-z]{{0,4}}[a-z]){_POD_CHAR}{{5}})\b"
)
_ULID = "[0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]"  # Crockford's base 32, 26 of them, the first 0-7
_HEX = "[0-9a-fA-F]"

# The variable parts of an error message, most specific first. Each expression starts
# with a literal or a class where it can (a word boundary checked behind it, not before
# it): the engine then skips to where one may start, instead of trying at every position.
_PLACEHOLDERS = [
    (re.compile(_UUID.decode()), "<uuid>"),
    (re.compile(rf"[0-7]{_ULID}{{25}}(?<=\b[0-7]{_ULID}{{25}})\b"), "<ulid>"),
    (re.compile(r"\d(?<!\w\d)\d{0,2}\.\d{1,3}\.\d{1,3}\.\d{1,3}(?::\d+)?\b"), "<ip>"),
    (re.compile(r"/(?<![\w.]/)[\w.@~+-]+(?:/[\w.@~+-]+)+/?"), "<path>"),
    (re.compile(_POD), "-<pod>"),
    (
        re.compile(
            rf"(?<!\w)(?:0x{_HEX}+|(?={_HEX}{{6}})(?={_HEX}*\d)(?={_HEX}*[a-fA-F]){_HEX}+)(?!\w)"
        ),
        "<hex>",
    ),
    (re.compile(r"\d(?<!\w\d)\d*(?:\.\d+)?\b"), "<n>"),
]


def normalize(message: str) -> str:
    """An error message with ids, numbers, addresses and paths replaced by placeholders,
    so the same failure on different items counts as one pattern. A pod keeps the name of
    what runs it (`worker-<pod>`): that one is the same on every restart."""
    for pattern, placeholder in _PLACEHOLDERS:
        message = pattern.sub(placeholder, message)
    return " ".join(message.split())[:EXAMPLE_CHARS]


def normalize_request(status: int, request: str) -> str:
    """An access log's failing request as a pattern: `502 GET /api/items/<n>`, the status,
    the method and the path without its query, each segment folded on its own (folding
    the whole path to `<path>` would make every failing route one)."""
    parts = request.split()
    method, target = (parts[0], parts[1]) if len(parts) >= 2 else ("", request)
    path = "/".join(normalize(segment) for segment in target.split("?", 1)[0].split("/"))
    return " ".join(part for part in (str(status), method[:16], path) if part)[:EXAMPLE_CHARS]
