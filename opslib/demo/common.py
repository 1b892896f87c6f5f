"""What every demo writes the same way: stamps as the pipelines store them, log lines,
back-dated files, folders built aside before they replace the old ones, and the mark
that says a database is one of ours."""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
from collections.abc import Callable
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


def python_log_line(moment: datetime, logger: str, level: str, message: str) -> str:
    """Python logging's default layout with milliseconds, as a Python pipeline writes it."""
    milliseconds = moment.microsecond // 1000
    return f"{moment:%Y-%m-%d %H:%M:%S},{milliseconds:03d} - {logger} - {level} - {message}\n"


def created_at(database: Path) -> str | None:
    """When a demo wrote `database`, from its `demo_meta` table (None without the row),
    read-only. A file without the table is not a demo's: sqlite3.Error."""
    with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as connection:
        row = connection.execute("SELECT value FROM demo_meta WHERE key = 'created_at'").fetchone()
    return None if row is None else row[0]


def build_aside(folder: Path, build: Callable[[Path], object]) -> Path:
    """Have `build` fill a new folder beside `folder`, then put it in `folder`'s place.
    A demo never deletes before it knows it can build: one that fails half-way (a
    database down, a full disk) leaves the old folder whole."""
    staging = folder.with_name(f".{folder.name}.building")
    old = folder.with_name(f".{folder.name}.old")
    for leftover in (staging, old):  # from a run that was killed
        shutil.rmtree(leftover, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        build(staging)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if folder.exists():
        folder.rename(old)
    try:
        staging.rename(folder)
    except BaseException:
        if old.exists():  # the old folder back in place, not left to be swept as a leftover
            old.rename(folder)
        raise
    shutil.rmtree(old, ignore_errors=True)
    return folder
