"""Where each log file was left off, for checks that read only what is new.

A file is recognised by a fingerprint of its first bytes rather than by name: a file
renamed (and even compressed) by rotation is recognised and continued, a truncated one is
read again from the start, so no line is lost or counted twice.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from opslib import paths
from opslib.probes.logscan.reading import open_log
from opslib.probes.logscan.scanner import Scanner

FINGERPRINT_BYTES = 1024


def fingerprint(path: Path, length: int = FINGERPRINT_BYTES) -> tuple[str, int]:
    """A hash of the file's first bytes (uncompressed) and how many there were."""
    with open_log(path) as stream:
        head = stream.read(length)
    return hashlib.sha1(head).hexdigest(), len(head)


class Offsets:
    """How far each log file was read last time, kept as JSON in `path`.

    A file is recognised by the hash of its first bytes, so rotation by rename or by
    compression keeps its place. Lines appended to a file after the last scan are the
    only ones read; a file shorter than where we stopped was truncated and starts over.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.entries: list[dict] = json.loads(path.read_text())
        except (OSError, ValueError):
            self.entries = []

    def start_of(self, file: Path) -> int:
        """Where to resume `file`: past what an earlier scan already read, else 0."""
        # the longest fingerprint first: a short head (a young file) matches more files
        for entry in sorted(self.entries, key=lambda entry: -entry["head_length"]):
            if entry.get("claimed") or not entry["head_length"]:
                continue
            digest, length = fingerprint(file, entry["head_length"])
            if length == entry["head_length"] and digest == entry["head"]:
                entry["claimed"] = True
                size = _uncompressed_size(file)
                return entry["offset"] if size is None or size >= entry["offset"] else 0
        return 0

    def scan(self, files: list[Path], scanner: Scanner) -> None:
        """Read what is new in every file and remember where each one ended."""
        seen = []
        for file in files:
            start = self.start_of(file)
            end = scanner.read(file, start, finished_lines_only=True)
            digest, length = fingerprint(file)
            seen.append({"head": digest, "head_length": length, "offset": end, "file": str(file)})
        self.entries = seen
        paths.write_atomically(self.path, json.dumps(seen, indent=1))


def _uncompressed_size(file: Path) -> int | None:
    """The size of a plain file; None for a compressed one (unknown without reading it)."""
    return None if file.suffix == ".gz" else file.stat().st_size
