"""Reading log files as blocks of whole lines, compressed or not, without loading them."""

from __future__ import annotations

import gzip
import itertools
import re
import zlib
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

from opslib.clock import utc_now
from opslib.probes.logscan.stamps import line_shapes, parse_stamp

BLOCK = 1 << 20
GZIP_INPUT_BYTES = 1 << 16  # inflates to about 256 KiB of text


def open_log(path: Path) -> BinaryIO:
    return gzip.open(path, "rb") if path.suffix == ".gz" else path.open("rb")


def text_pieces(path: Path, start: int = 0) -> Iterator[bytes]:
    """The file's text from byte `start` (of its uncompressed text), a piece at a time. A
    gzip file is inflated from a little compressed input at a time, every member of it:
    its output then stays in the processor's cache while it is scanned."""
    with path.open("rb") as stream:
        if path.suffix != ".gz":
            stream.seek(start)
            while piece := stream.read(BLOCK):
                yield piece
            return
        inflate, pending = zlib.decompressobj(wbits=31), False
        while data := stream.read(GZIP_INPUT_BYTES):
            while data:
                piece, pending = inflate.decompress(data), True
                data = b""
                if inflate.eof:  # the end of a member: another may follow
                    data, pending = inflate.unused_data, False
                    inflate = zlib.decompressobj(wbits=31)
                    if data[:2] != b"\x1f\x8b":  # padding after the last member
                        data = b""
                if start >= len(piece):
                    start -= len(piece)
                    continue
                yield piece[start:] if start else piece
                start = 0
        if pending:
            raise EOFError("compressed file ended before the end-of-stream marker was reached")


def line_blocks(
    pieces: Iterator[bytes], tail: list[bytes], limit: int | None = None
) -> Iterator[bytes]:
    """Whole lines (a line never straddles two blocks) from at most `limit` bytes of
    `pieces`; an unfinished last line is left in `tail`, since its writer may still be
    writing it."""
    carry = b""
    left = -1 if limit is None else limit
    for piece in pieces:
        if 0 <= left < len(piece):
            piece = piece[:left]
        left -= len(piece) if left > 0 else 0
        cut = piece.rfind(b"\n") + 1
        if cut:
            yield carry + memoryview(piece)[:cut]  # one copy, not two
            carry = piece[cut:]
        else:
            carry += piece
        if not left:
            break
    tail.append(carry)


def matching_lines(
    files: list[Path], pattern: str, formats: tuple[str, ...] = ()
) -> Iterator[tuple[datetime | None, dict[str, str]]]:
    """(time, named groups) of every line of `files` that `pattern` matches, searched in
    the line's text as `re.search` reads it (anchors, inline flags and Unicode classes
    mean what they mean on one line). The time is the line's own stamp, None for a line
    without one. Streamed block by block; a block the pattern matches nowhere in is passed
    over at the engine's speed, and only the others are read line by line."""
    wanted, anywhere = re.compile(pattern), re.compile(pattern, re.M)
    dated = line_shapes(formats).dated
    year = utc_now().year
    for path in files:
        tail: list[bytes] = []
        # chain reads `tail` only once the blocks are done and have filled it
        for block in itertools.chain(line_blocks(text_pieces(path), tail), tail):
            text = bytes(block).decode("utf-8", "replace")
            if anywhere.search(text) is None:
                continue
            for line in text.splitlines():
                match = wanted.search(line)
                if match is None:
                    continue
                head = dated.match(line.encode())
                stamp = parse_stamp(head["stamp"], year, formats) if head else None
                yield stamp, {key: value for key, value in match.groupdict().items() if value}
