"""What an error line is about: the level words that make a line an error, rate-limit
signals, and the normalizing that folds ids, numbers, addresses and paths so the same
failure on different items counts as one pattern."""

from __future__ import annotations

import re

EXAMPLE_CHARS = 300

# Words whose lines need a closer look, found by plain substring search (C speed).
ERROR_WORDS = (b"ERROR", b"CRITICAL", b"FATAL")
ERROR_LEVELS = {b"ERROR", b"CRITICAL", b"FATAL"}
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

# the variable parts of an error message, most specific first
_PLACEHOLDERS = [
    (re.compile(_UUID.decode()), "<uuid>"),
    (re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?\b"), "<ip>"),
    (re.compile(r"(?<![\w.])(?:/[\w.@~+-]+){2,}/?"), "<path>"),
    (
        re.compile(
            r"\b0x[0-9a-fA-F]+\b|\b(?=[0-9a-fA-F]*\d)(?=[0-9a-fA-F]*[a-fA-F])[0-9a-fA-F]{8,}\b"
        ),
        "<hex>",
    ),
    (re.compile(r"\b\d+(?:\.\d+)?\b"), "<n>"),
]


def normalize(message: str) -> str:
    """An error message with ids, numbers, addresses and paths replaced by placeholders,
    so the same failure on different items counts as one pattern."""
    for pattern, placeholder in _PLACEHOLDERS:
        message = pattern.sub(placeholder, message)
    return " ".join(message.split())[:EXAMPLE_CHARS]
