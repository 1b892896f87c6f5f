"""What every demo writes the same way: stamps as the pipelines store them, log lines,
back-dated files, and files swapped in whole."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path


def stamp(moment: datetime) -> str:
    """The text form SQLAlchemy's SQLite DateTime writes."""
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f")


def iso_stamp(moment: datetime) -> str:
    """ISO 8601 text with `T`, milliseconds and `Z`, as goqite and many Go and JavaScript
    services write it (what SQLite's `strftime('%Y-%m-%dT%H:%M:%fZ')` gives)."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def set_mtime(path: Path, moment: datetime) -> None:
    """Give a file the modification time it would have had (`moment` is naive UTC)."""
    stamp = moment.replace(tzinfo=UTC).timestamp()
    os.utime(path, (stamp, stamp))


def log_line(moment: datetime, level: str, message: str) -> str:
    return f"{moment.strftime('%Y-%m-%dT%H:%M:%S')}Z {level:<7} {message}\n"


def write_atomically(target: Path, write) -> None:  # type: ignore[no-untyped-def]
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    temporary.unlink(missing_ok=True)
    write(temporary)
    os.replace(temporary, target)
