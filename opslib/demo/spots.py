"""`opslib demo spots`: the spots pipeline's `production.db` and its stage logs.

A table of broadcast spots that two stages fill in turn: stage 1 assigns a language block
to about 90 % of them, stage 2 assigns a business rule to about half of the rest, and the
remainder waits for manual review, as the manual expects; stage 1's assignments are also
kept in `spot_language_blocks`, the table the manual's consistency query reads. Stage 2
runs at the manual example's 7.4 spots/s, slower than its 5-10 min per 100K spots, which
the slow-processing runbook finds. Planted: a few rows whose
`broadcast_month` is still in one of the old formats instead of `Mon-YY`. `rows` and
`note_bytes` make the same database at any size (the benchmark builds a 1 GB one).
"""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

from tqdm import tqdm

from opslib import paths
from opslib.clock import utc_now
from opslib.demo.common import created_at, log_line, stamp
from opslib.errors import OpslibError

SCHEMA = """
CREATE TABLE language_blocks (
    block_id INTEGER PRIMARY KEY,
    language TEXT NOT NULL,
    market TEXT NOT NULL
);
CREATE TABLE spots (
    spot_id INTEGER PRIMARY KEY,
    broadcast_month TEXT NOT NULL,
    air_date TEXT NOT NULL,
    market TEXT NOT NULL,
    customer TEXT NOT NULL,
    revenue REAL NOT NULL,
    language_block_id INTEGER REFERENCES language_blocks (block_id),
    language_assigned_at TIMESTAMP,
    business_rule TEXT,
    rule_assigned_at TIMESTAMP,
    notes TEXT
);
CREATE TABLE spot_language_blocks (
    spot_id INTEGER PRIMARY KEY REFERENCES spots (spot_id),
    block_id INTEGER REFERENCES language_blocks (block_id)
);
CREATE INDEX spots_month ON spots (broadcast_month);
CREATE INDEX spots_language_block ON spots (language_block_id);
CREATE TABLE demo_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
MARKETS = ("NYC", "LAX", "SFO", "SEA", "CHI", "HOU", "DAL")
LANGUAGES = ("English", "Spanish", "Chinese", "Vietnamese", "Korean", "Tagalog")
CUSTOMERS = ("Acme Auto", "Sunrise Bank", "Golden Dragon Foods", "Direct Response", "City Clinic")
RULES = ("direct_response", "paid_programming", "worldwide_default")
STAGE1_SHARE = 0.90
STAGE2_SHARE_OF_REST = 0.55
# broadcast_month values left in the formats the manual says were retired
OLD_FORMATS = ("2024-03-01", "2024-03-01 00:00:00", "2025-01-01", "2024-11-01 00:00:00")
PLANTED_BAD_MONTHS = 7
BATCH = 50_000


def demo_dir() -> Path:
    return paths.data_dir() / "spots"


def database_path() -> Path:
    return demo_dir() / "production.db"


def present() -> bool:
    """Whether the demo is already there (`opslib demo --if-stale` leaves it alone then)."""
    return database_path().exists()


def logs_dir() -> Path:
    return demo_dir() / "logs"


def _month(moment: datetime) -> str:
    return moment.strftime("%b-%y")


def _spots(rows: int, now: datetime, note_bytes: int, seed: int) -> Iterator[tuple]:
    rng = random.Random(seed)
    bad = set(rng.sample(range(1, rows + 1), min(PLANTED_BAD_MONTHS, rows)))
    note = "x" * note_bytes
    for spot_id in range(1, rows + 1):
        aired = now - timedelta(days=rng.uniform(1, 540))
        month = rng.choice(OLD_FORMATS) if spot_id in bad else _month(aired)
        block = rule = None
        block_at = rule_at = None
        if rng.random() < STAGE1_SHARE:
            block = rng.randint(1, len(MARKETS) * len(LANGUAGES))
            block_at = stamp(now - timedelta(hours=6, seconds=rng.uniform(0, 900)))
        elif rng.random() < STAGE2_SHARE_OF_REST:
            rule = rng.choice(RULES)
            rule_at = stamp(now - timedelta(hours=5, seconds=rng.uniform(0, 600)))
        yield (
            spot_id,
            month,
            aired.strftime("%Y-%m-%d"),
            rng.choice(MARKETS),
            rng.choice(CUSTOMERS),
            round(rng.uniform(25, 2500), 2),
            block,
            block_at,
            rule,
            rule_at,
            note or None,
        )


def _stage_logs(rows: int, now: datetime) -> dict[str, list[tuple[datetime, str, str]]]:
    """What each stage logged on its last run, in the progress format the manual asks for."""
    logs: dict[str, list[tuple[datetime, str, str]]] = {}
    for number, (name, started) in enumerate(
        (
            ("language_blocks", now - timedelta(hours=6, minutes=20)),
            ("business_rules", now - timedelta(hours=5, minutes=15)),
        ),
        start=1,
    ):
        todo = rows if number == 1 else round(rows * (1 - STAGE1_SHARE))
        lines = [
            (started, "INFO", f"Stage {number}: starting {name} assignment"),
            (started, "INFO", f"Stage {number}: found {todo:,} spots to process"),
        ]
        rate = 7.4 if number == 2 else 350.0
        for done in range(1000, todo, 1000):
            lines.append(
                (
                    started + timedelta(seconds=done / rate),
                    "INFO",
                    f"Stage {number}: processed {done:,}/{todo:,} spots ({done / todo:.1%})",
                )
            )
        lines.append(
            (
                started + timedelta(seconds=todo / rate),
                "INFO",
                f"Stage {number}: assignment complete in {todo / rate:.1f}s",
            )
        )
        logs[f"stage{number}_{name}.log"] = lines
    return logs


def _refuse_foreign(database: Path) -> None:
    """Never replace a database this module did not create (one without `demo_meta`)."""
    if not database.exists():
        return
    try:
        created_at(database)
    except sqlite3.Error:
        raise OpslibError(
            f"{database} exists and is not a spots demo database: not replacing it"
        ) from None


def create(
    rows: int = 20_000, *, note_bytes: int = 0, seed: int = 11, target: Path | None = None
) -> Path:
    """(Re)create the spots database (and, for the built-in one, its stage logs)."""
    now = utc_now()
    database = target or database_path()
    _refuse_foreign(database)

    def write_database(path: Path) -> None:
        connection = sqlite3.connect(path)
        with connection:
            connection.executescript(SCHEMA)
            connection.executemany(
                "INSERT INTO language_blocks VALUES (?, ?, ?)",
                [
                    (number, language, market)
                    for number, (language, market) in enumerate(
                        ((lang, market) for market in MARKETS for lang in LANGUAGES), start=1
                    )
                ],
            )
            connection.execute("INSERT INTO demo_meta VALUES ('created_at', ?)", (now.isoformat(),))
        spots = _spots(rows, now, note_bytes, seed)
        with tqdm(total=rows, desc="spots", unit="spot", disable=rows < 10 * BATCH) as progress:
            while batch := [row for _, row in zip(range(BATCH), spots, strict=False)]:
                with connection:
                    connection.executemany(
                        "INSERT INTO spots VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", batch
                    )
                progress.update(len(batch))
        with connection:  # stage 1's assignments as the pipeline also keeps them
            connection.execute(
                "INSERT INTO spot_language_blocks SELECT spot_id, language_block_id FROM spots "
                "WHERE language_block_id IS NOT NULL"
            )
        connection.close()

    paths.replace_atomically(database, write_database)
    if target is None:
        for name, lines in _stage_logs(rows, now).items():
            paths.write_atomically(logs_dir() / name, "".join(log_line(*line) for line in lines))
    return database
