"""`scan()`: a large set of files cut into parts that several processes read at once,
added up in file order, so the triage is the same as reading the files one by one. Each
file's format is found once, here, and travels with its parts."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from opslib.clock import utc_now
from opslib.probes.logscan.detect import AUTO, file_format
from opslib.probes.logscan.formats import PLAIN, LineFormat, line_format
from opslib.probes.logscan.results import Triage
from opslib.probes.logscan.scanner import Scanner
from opslib.probes.logscan.stamps import LineShapes, after_newline, line_shapes

PARALLEL_FROM_BYTES = 32 * 2**20
PART_BYTES = 8 * 2**20  # a plain file is read in parts of about this: they even out the end
GZIP_COST = 1.6  # reading a byte of compressed text costs this much (inflating it too)
_ALIGN_BYTES = 1 << 16  # how far past a planned cut its first dated line is looked for


@dataclass(frozen=True)
class _Part:
    """The lines of one file that start in [start, end) of its text (`end` None: to its
    end), in format `kind`; `cost` is about the bytes it means to read, a compressed one
    counting more."""

    path: Path
    start: int
    end: int | None
    cost: float
    kind: str = PLAIN


def _text_size(path: Path) -> tuple[int, bool]:
    """About how many bytes of text a file holds, and whether it is compressed: for gzip
    the size its trailer records (modulo 4 GiB: a larger file is guessed from its own).
    A file that cannot be read counts 0 here; reading it will say why."""
    gz = path.suffix == ".gz"
    try:
        size = path.stat().st_size
        if not gz:
            return size, gz
        with path.open("rb") as stream:
            stream.seek(max(size - 4, 0))
            recorded = int.from_bytes(stream.read(4), "little")
    except OSError:
        return 0, gz
    return (recorded if recorded >= size else 4 * size), gz


def _dated_line_starts(path: Path, cuts: list[int], shapes: LineShapes) -> list[int]:
    """For each planned cut, where the first whole dated line after it starts, so that no
    part begins inside an entry (its undated lines stay with it); a cut with none near it
    is dropped."""
    dated = after_newline(shapes.formats)[0]
    starts: list[int] = []
    with path.open("rb") as stream:
        for cut in cuts:
            stream.seek(cut - 1)  # from the newline before a line starting at the cut
            near = stream.read(_ALIGN_BYTES)
            found = dated.search(near, 0, near.rfind(b"\n"))  # a stamp on a whole line
            if found is not None and (not starts or cut - 1 + found.start() + 1 > starts[-1]):
                starts.append(cut - 1 + found.start() + 1)
    return starts


def _entry_starts(path: Path, cuts: list[int], line_format: LineFormat) -> list[int]:
    """`_dated_line_starts` for a format read line by line: where the first whole line
    after each cut that is an entry of the format with a time of its own starts (an
    undated entry goes with the dated one above it, which the part would not hold)."""
    starts: list[int] = []
    year = utc_now().year
    with path.open("rb") as stream:
        for cut in cuts:
            stream.seek(cut - 1)
            near = stream.read(_ALIGN_BYTES)
            offset = near.find(b"\n") + 1
            while offset > 0 and (end := near.find(b"\n", offset)) != -1:
                entry = line_format.parse(near[offset:end])
                if entry and entry[0] is not None and line_format.when(entry[0], year):
                    if not starts or cut - 1 + offset > starts[-1]:
                        starts.append(cut - 1 + offset)
                    break
                offset = end + 1
    return starts


def _parts(
    files: list[Path], shapes: LineShapes, kinds: dict[Path, str] | None = None
) -> list[_Part]:
    """The files as parts to share among processes: a compressed file whole (it can only
    be read from its start), a large plain file in several parts cut at dated lines (a
    file in another of `kinds`, the format of each file, at its entries)."""
    parts = []
    for path in files:
        kind = (kinds or {}).get(path, PLAIN)
        size, gz = _text_size(path)
        count = 1 if gz else round(size / PART_BYTES)
        if count < 2:
            parts.append(_Part(path, 0, None, size * (GZIP_COST if gz else 1), kind))
            continue
        cuts = [size * number // count for number in range(1, count)]
        if kind == PLAIN:
            starts = [0, *_dated_line_starts(path, cuts, shapes)]
        else:
            starts = [0, *_entry_starts(path, cuts, line_format(kind, shapes.formats))]
        for begin, end in zip(starts, [*starts[1:], None], strict=True):
            parts.append(_Part(path, begin, end, (size if end is None else end) - begin, kind))
    return parts


def _read_part(
    part: _Part,
    keys: dict[bytes, str],
    year: int,
    since: datetime | None,
    requests: str | None,
    formats: tuple[str, ...],
    log_format: str = AUTO,
) -> Scanner:
    """One part read by a scanner of its own, which uses the normalizing cache `keys`."""
    scanner = Scanner(since, requests, formats, log_format)
    scanner._keys = keys
    scanner.year = scanner.window.year = year  # every process reads syslog's year alike
    if part.start == 0:
        scanner._triage.files += 1
        scanner._triage.formats[part.kind] += 1
    scanner._read(part.path, part.start, part.end, False, part.kind)
    return scanner


def _read_claimed(
    parts: list[_Part], order: list[int], counter, found: dict[int, Scanner], *settings
) -> None:
    """Read parts, taking the next one in `order` from the shared `counter` until none is
    left, into `found` (by part). Scanners in one process share the normalizing cache."""
    keys: dict[bytes, str] = {}
    while True:
        with counter.get_lock():
            taken = counter.value
            counter.value += 1
        if taken >= len(order):
            return
        found[order[taken]] = _read_part(parts[order[taken]], keys, *settings)


def _scan_worker(parts: list[_Part], order: list[int], counter, results, *settings) -> None:
    """A worker process: its share of the parts, sent back as one message at the end
    (part numbers missing from it, if it failed, are read again by the caller)."""
    found: dict[int, Scanner] = {}
    try:
        _read_claimed(parts, order, counter, found, *settings)
    finally:
        for scanner in found.values():
            scanner._keys = {}  # a cache, not a result: it need not travel back
        results.send(found)
        results.close()


def scan(
    files: list[Path],
    since: datetime | None,
    requests: str | None = None,
    formats: tuple[str, ...] = (),
    log_format: str = AUTO,
) -> Triage:
    """Triage `files` (oldest first), each in `log_format` (`auto`: the one its first
    lines show). A large set is cut into parts (whole compressed files, ranges of lines of
    plain ones) that this process and a worker process per other core take one at a time,
    the largest first, until none is left; the parts' results are added up in file order,
    so it is the same triage as reading the files one by one."""
    processes = len(os.sched_getaffinity(0))
    settings = (utc_now().year, since, requests, tuple(formats), log_format)
    parts: list[_Part] = []
    unrecognized: list[Path] = []
    if processes > 1 and sum(_text_size(path)[0] for path in files) >= PARALLEL_FROM_BYTES:
        kinds = {path: file_format(path, log_format, tuple(formats)) for path in files}
        unrecognized = [path for path in files if kinds[path] is None]
        known = {path: kind for path, kind in kinds.items() if kind is not None}
        parts = _parts(list(known), line_shapes(tuple(formats)), known)
    if len(parts) < 2:
        scanner = Scanner(since, requests, formats, log_format)
        for path in files:
            scanner.read(path)
        return scanner.triage
    import multiprocessing  # here: most callers read a few files in their own process

    order = sorted(range(len(parts)), key=lambda index: -parts[index].cost)  # largest first
    # spawn, not fork: the caller may be a Jupyter kernel with threads of its own
    context = multiprocessing.get_context("spawn")
    counter = context.Value("i", 0)
    workers = []
    for _ in range(min(processes, len(parts)) - 1):
        receiver, sender = context.Pipe(duplex=False)
        worker = context.Process(
            target=_scan_worker,
            args=(parts, order, counter, sender, *settings),
            daemon=True,
        )
        worker.start()
        sender.close()  # the worker's end: its exit is then seen as the end of the pipe
        workers.append((worker, receiver))
    found: dict[int, Scanner] = {}
    try:
        _read_claimed(parts, order, counter, found, *settings)
        for worker, receiver in workers:
            with contextlib.suppress(EOFError):  # it died: its parts are read below
                found.update(receiver.recv())
            worker.join()
    finally:
        for worker, receiver in workers:
            receiver.close()
            if worker.is_alive():
                worker.terminate()
    keys: dict[bytes, str] = {}
    whole = found.get(0) or _read_part(parts[0], keys, *settings)
    for index in range(1, len(parts)):
        whole.absorb(found.get(index) or _read_part(parts[index], keys, *settings))
    whole._triage.unreadable = list(dict.fromkeys(whole._triage.unreadable))  # once per file
    whole._triage.files += len(unrecognized)
    whole._triage.unrecognized += [path.name for path in unrecognized]
    return whole.triage
