"""Do the archive's views stay fast when the ledger is a year of five-minute checks?

A ledger of `--runs` runs (default 100,000) with `--checks` results each (default 10,
so 1,000,000 check rows) over 100 runbook × profile pairs and the last 365 days is
written into a temp archive (schema by opslib's own Ledger, rows by sqlite3 executemany).
Then, as fresh processes like a person or cron would start them, the median of
`--repeat` runs of:

- `opslib history` (the newest 20), and filtered `--status CRITICAL --since '7 days'`;
- `opslib show RUN` for a run in the middle of the year;
- `opslib index` (the status board: 100 rows, 30-run strips, trend lines).

Targets: history <= 1 s, index <= 2 s (wall time of the whole command, Python start and
imports included).

    .venv/bin/python bench/ledger_scale.py [--runs 100000] [--checks 10] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from machine import describe
from tqdm import tqdm

BIN = Path(sys.executable).parent
TARGETS = {"history": 1.0, "index": 2.0}
STATUSES = ["OK"] * 80 + ["WARNING"] * 14 + ["CRITICAL"] * 5 + ["UNKNOWN"]
GROUPS = [(f"runbook-{r:02d}", f"profile-{p}") for r in range(20) for p in range(5)]


def build(reports: Path, run_count: int, checks: int, seed: int = 1) -> str:
    """Write the ledger; returns the id of a run in the middle."""
    env = {**os.environ, "OPSLIB_REPORTS_DIR": str(reports)}
    code = "from opslib.archive import Ledger; Ledger()"  # the real schema and indexes
    subprocess.run([sys.executable, "-c", code], env=env, check=True)
    rng = random.Random(seed)
    now = datetime.now(UTC).replace(tzinfo=None)
    step = timedelta(days=365) / run_count
    middle = ""
    with sqlite3.connect(reports / "ledger.sqlite") as connection:
        for start in tqdm(range(0, run_count, 10_000), desc="ledger", unit="10k runs"):
            run_rows, check_rows = [], []
            for number in range(start, min(start + 10_000, run_count)):
                runbook, profile = GROUPS[number % len(GROUPS)]
                started = now - timedelta(days=365) + step * number
                status = rng.choice(STATUSES)
                run_id = f"{number:012x}"
                middle = middle or (run_id if number >= run_count // 2 else "")
                path = f"{started:%Y/%m/%d}/{runbook}--{profile}--{started:%H%M%S}"
                run_rows.append((run_id, runbook, profile, started.isoformat(sep=" "),
                                 rng.uniform(1, 5), status, ["OK", "WARNING", "CRITICAL",
                                 "UNKNOWN"].index(status), f"{status} run", f"{path}.ipynb",
                                 f"{path}.html", "abc123", "cron", "", "host", "{}"))  # fmt: skip
                check_rows += [
                    (run_id, f"check_{c}", "OK" if c else status, rng.uniform(0, 100), "%", "")
                    for c in range(checks)
                ]
            connection.executemany(
                "INSERT INTO runs (run_id, runbook, profile, started_at, duration_s, status, "
                "exit_code, summary, notebook_path, html_path, git_sha, os_user, run_by, host, "
                "parameters) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                run_rows,
            )
            connection.executemany(
                "INSERT INTO check_results (run_id, name, status, value, unit, summary) "
                "VALUES (?,?,?,?,?,?)",
                check_rows,
            )
        connection.execute("ANALYZE")
    return middle


def timed(command: list[str], env: dict[str, str], repeat: int) -> float:
    """The median wall time of `repeat` fresh processes, after one warm-up."""
    runs = []
    for index in range(repeat + 1):
        started = time.perf_counter()
        done = subprocess.run(command, env=env, capture_output=True, text=True)
        if done.returncode not in (0, 1, 2, 3) or done.stderr:  # show exits with the run's status
            raise SystemExit(f"benchmark failed: {' '.join(command)}\n{done.stderr}")
        if index:
            runs.append(time.perf_counter() - started)
    return statistics.median(runs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--checks", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    print(describe())
    with tempfile.TemporaryDirectory(prefix="opslib-ledger-") as temp:
        reports = Path(temp) / "reports"
        reports.mkdir()
        started = time.perf_counter()
        middle = build(reports, args.runs, args.checks)
        size = (reports / "ledger.sqlite").stat().st_size / 1e6
        print(
            f"ledger: {args.runs} runs, {args.runs * args.checks} check rows, {size:.0f} MB, "
            f"written in {time.perf_counter() - started:.1f} s"
        )
        env = {**os.environ, "OPSLIB_REPORTS_DIR": str(reports)}
        opslib = str(BIN / "opslib")
        measured = [
            ("history", "opslib history", [opslib, "history"]),
            ("history", "opslib history --status CRITICAL --since '7 days'",
             [opslib, "history", "--status", "CRITICAL", "--since", "7 days"]),
            ("history", f"opslib show {middle}", [opslib, "show", middle]),
            ("index", "opslib index", [opslib, "index"]),
        ]  # fmt: skip
        failed = False
        for kind, label, command in measured:
            seconds = timed(command, env, args.repeat)
            verdict = "PASS" if seconds <= TARGETS[kind] else "MISS"
            failed |= verdict == "MISS"
            print(f"{label:<52} {seconds:6.2f} s  (target <= {TARGETS[kind]:.0f} s)  {verdict}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
