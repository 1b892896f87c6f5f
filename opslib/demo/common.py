"""What every demo writes the same way: stamps as the pipelines store them, log lines,
back-dated files, and the mark that says a database is one of ours."""

from __future__ import annotations

import contextlib
import os
import sqlite3
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
