"""The goqite example profile against goqite's real SQLite table (tests/corpus/goqite.sql),
seeded with a known story relative to now in goqite's own time format
(`YYYY-MM-DDTHH:MM:SS.SSSZ` text): depth and stuck messages must be exactly what was
planted, and what goqite deletes (processed messages) must be UNKNOWN, never 0.

goqite has no status column: a message is in flight while its visibility timeout is in
the future, waiting once it has passed (a receive that timed out comes back), and dead
once received MaxReceive (3) times. A stuck message is in flight, with its last receive
(or extend) older than stuck_after.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from queue_corpus import (
    CORPUS,
    NOT_KEPT,
    Moments,
    example,
    measure,
    reset_does_not_apply,
    stuck_ids,
)


def test_goqite_depth_and_stuck_are_exact_and_what_was_deleted_is_unknown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "goqite.db"
    monkeypatch.setenv("GOQITE_DB", str(path))
    at = Moments()
    story = {  # id: received, minutes ago: created, updated (last receive), timeout
        "m_new1": (0, 5, 5, 5),
        "m_new2": (0, 8, 8, 8),
        "m_timed_out": (1, 60, 50, 20),  # its receive timed out: waiting again, not stuck
        "m_fresh1": (1, 10, 3, -27),
        "m_fresh2": (2, 40, 10, -20),
        "m_stuck1": (1, 130, 120, -240),  # a long visibility timeout, no extend since
        "m_stuck2": (1, 95, 90, -30),
        "m_dead": (3, 300, 200, 170),  # received MaxReceive times: never handed out again
    }
    with sqlite3.connect(path) as db:
        db.executescript((CORPUS / "goqite.sql").read_text())
        db.executemany(  # body is a BLOB in a STRICT table: bytes, not text
            "INSERT INTO goqite (id, queue, body, received, created, updated, timeout)"
            " VALUES (?, 'mail', ?, ?, ?, ?, ?)",
            [
                (message, b'{"to": "a@example.com"}', received, *map(at.iso, minutes))
                for message, (received, *minutes) in story.items()
            ],
        )
    db.close()
    profile = example("goqite")
    assert measure(profile) == {
        "queue_depth": 3 + 2 + 2,  # the dead message is not waiting
        "stuck_jobs": 2,
        "failure_rate": NOT_KEPT,  # processed messages are deleted: nothing to divide by
        "throughput": NOT_KEPT,
        "processing_time": NOT_KEPT,
    }
    assert stuck_ids(profile) == {"m_stuck1", "m_stuck2"}
    reset_does_not_apply(profile)
