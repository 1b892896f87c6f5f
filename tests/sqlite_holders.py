"""Real processes that hold real SQLite locks, for the lock, stage and backup tests.

Run as `python sqlite_holders.py MODE DATABASE [TAG]`: the child prints `ready` once it
holds what MODE says and then keeps holding it until killed. TAG only lands on the
command line, where the profile's process patterns (a stage's, datasette's) match it.
"""

from __future__ import annotations

import contextlib
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

HOLD_S = 120


def _exclusive(connection: sqlite3.Connection) -> None:
    connection.execute("BEGIN EXCLUSIVE")
    connection.execute("UPDATE spots SET notes = 'held' WHERE spot_id = 1")


def _wal_writer(connection: sqlite3.Connection) -> None:
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("BEGIN IMMEDIATE")
    connection.execute("UPDATE spots SET notes = 'held' WHERE spot_id = 1")


def _crash_mid_write(connection: sqlite3.Connection) -> None:
    """Rewrite every spot with a tiny page cache, so changed pages spill into the file
    and the journal is synced: killed now, it leaves a hot journal behind."""
    connection.execute("PRAGMA cache_size=5")
    connection.execute("BEGIN")
    connection.execute("UPDATE spots SET notes = 'half-written'")


def _reader(connection: sqlite3.Connection) -> Iterator[object]:
    rows = connection.execute("SELECT * FROM spots")
    rows.fetchone()  # the statement stays open: SHARED is held until it finishes
    return rows


def _deaf_reader(connection: sqlite3.Connection) -> Iterator[object]:
    """A reader that ignores SIGTERM: asked to go, it keeps the database open."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    return _reader(connection)


def _idle(connection: sqlite3.Connection) -> None:
    connection.execute("SELECT count(*) FROM spots").fetchone()


def _stage_commit(connection: sqlite3.Connection) -> None:
    """A stage whose commit waits (busy timeout 30 s) for readers to let go."""
    connection.execute("BEGIN")
    connection.execute("UPDATE spots SET business_rule = 'direct_response' WHERE spot_id = 2")
    print("ready", flush=True)
    connection.execute("COMMIT")


def _busy(connection: sqlite3.Connection) -> None:
    """A stage at work: burns a core (after reporting ready)."""
    print("ready", flush=True)
    deadline = time.monotonic() + HOLD_S
    while time.monotonic() < deadline:
        sum(range(10_000))


def _committer(connection: sqlite3.Connection) -> None:
    """Commit one row at a time, hundreds a second, recording how many are committed. (A
    loop with no pause at all starves every reader in rollback-journal mode, a pipeline
    bug no backup can work around: its PENDING lock keeps new readers out.)"""
    connection.execute("CREATE TABLE IF NOT EXISTS ticks (n INTEGER PRIMARY KEY, at REAL)")
    print("ready", flush=True)
    number = 0
    while True:
        number += 1
        connection.execute("BEGIN IMMEDIATE")
        connection.execute("INSERT INTO ticks VALUES (?, ?)", (number, time.time()))
        connection.execute("COMMIT")
        time.sleep(0.002)


MODES = {
    "crash-mid-write": _crash_mid_write,
    "exclusive": _exclusive,
    "wal-writer": _wal_writer,
    "reader": _reader,
    "deaf-reader": _deaf_reader,
    "idle": _idle,
}


def main(mode: str, database: str) -> None:
    connection = sqlite3.connect(database, isolation_level=None, timeout=30)
    if mode == "committer":
        _committer(connection)
    if mode == "busy":
        _busy(connection)
    if mode == "stage-commit":
        _stage_commit(connection)
    held = MODES[mode](connection)  # noqa: F841 - a reader's cursor must stay alive
    print("ready", flush=True)
    time.sleep(HOLD_S)


@contextlib.contextmanager
def holding(mode: str, database: Path, tag: str = "holder") -> Iterator[subprocess.Popen[str]]:
    """A child process in MODE on `database`, killed (never left behind) on exit."""
    child = subprocess.Popen(
        [sys.executable, __file__, mode, str(database), tag],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = child.stdout.readline()
        if line.strip() != "ready":
            raise RuntimeError(f"{mode} holder did not start: {line}{child.stderr.read()}")
        yield child
    finally:
        child.kill()
        child.wait(timeout=10)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
