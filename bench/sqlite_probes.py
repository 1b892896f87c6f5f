"""Do the spots profile's SQLite probes stay usable on a 1 GB production.db?

The spots pipeline keeps everything in one SQLite file that grows with every broadcast
month, and the morning check runs its probes against it under the profile's
statement_timeout (60 s for `spots`). A probe that reads the whole file gets slower with
it, until one morning it reports UNKNOWN ("did not finish within its timeout") instead of
the state of the pipeline. This benchmark measures where a realistic file stands:

1. a spots database of `--gigabytes` GB (default 1.0, 10^9 bytes), built with
   `opslib.demo.spots.create(rows, note_bytes=...)`: rows per GB calibrated on a
   100,000-row build, then the size checked after the real build (and rebuilt once if it
   is more than 5% off). It is cached in `--workdir` with a JSON note of how it was built,
   so a rerun reuses it unless `--rebuild` (or the size or note_bytes changed);
2. the `spots` profile pointed at it (SPOTS_DB, OPSLIB_DATA_DIR = the workdir) and each
   morning-check probe evaluated through `Runbook.evaluate`: the first run (which may
   read the file from disk), then the median of `--repeat` runs, with status and summary.
   A check that comes back UNKNOWN because of its timeout is shown as such and not
   repeated;
3. `quick_check` (the check's default) against `integrity_check` (`full=True`, with a
   600 s budget), and their ratio: what the full check would cost a scheduled run;
4. the lock-holder scan (`opslib.probes.sqlite_locks.scan`, which reads /proc/locks and
   every /proc/<pid>/fd) timed as the machine is, with one reader child holding a SHARED
   lock on the database, and with that reader plus `--sleepers` (500) extra `sleep`
   processes: the scan's cost grows with the process count, and each time it must still
   name the reader (the benchmark fails if it does not). Every child is killed and
   reaped whatever happens.

Timings are with the file in the page cache after the first run (it fits in RAM on any
machine this is meant for); the "first" column is the only one that may include disk reads.

    .venv/bin/python bench/sqlite_probes.py [--gigabytes 1.0] [--repeat 3] [--rebuild]
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import textwrap
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from machine import describe
from tqdm import tqdm

from opslib.checks import CheckResult
from opslib.demo import spots as demo_spots
from opslib.probes import sqlite_locks
from opslib.profiles import Profile, load_profile
from opslib.runbook import Runbook
from opslib.status import Status

PROFILE = "spots"
DEFAULT_WORKDIR = Path("/tmp/opslib-bench-sqlite")
GB = 10**9
NOTE_BYTES = 200
SEED = 11
CALIBRATION_ROWS = 100_000
SIZE_TOLERANCE = 0.05  # rebuild once if the file is further than this from the target
CHECKS = [
    "database_reachable",
    "database_integrity",
    "sqlite_storage",
    "sqlite_locks",
    "sqlite_competitors",
    "stage_coverage",
    "stuck_stages",
    "format_violations",
    "invariant",
    "query_time",
]
INTEGRITY_BUDGET_S = 600
SLEEPERS = 500
SLEEP_S = 600
# what a probe's reason says when it ran out of time (db.classify, sqlite.integrity)
TIMEOUT_MARKS = ("did not finish within its timeout", "not finished in")
SUMMARY_WIDTH = 70

# A reader that keeps a SELECT open: SQLite holds SHARED on the file until it finishes.
HOLDER_SCRIPT = textwrap.dedent(
    """
    import sqlite3
    import sys
    import time

    connection = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True)
    rows = connection.execute("SELECT * FROM spots")
    rows.fetchone()
    print("ready", flush=True)
    time.sleep(float(sys.argv[2]))
    """
)


def machine(workdir: Path) -> str:
    """The machine and the SQLite version, for reading numbers elsewhere."""
    return f"{describe()}\nSQLite {sqlite3.sqlite_version} (Python's sqlite3 module); workdir {workdir}"


def process_count() -> int:
    return sum(1 for entry in os.scandir("/proc") if entry.name.isdigit())


def shorten(text: str, width: int = SUMMARY_WIDTH) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def cell(text: str) -> str:
    """Text safe inside a markdown table cell."""
    return text.replace("|", "\\|")


def size_text(size: int) -> str:
    return f"{size / GB:.2f} GB ({size / 2**30:.2f} GiB, {size:,} bytes)"


# --- the database ---------------------------------------------------------------------


@dataclass
class Built:
    """The bench database and how it was made (read back from its JSON note when cached)."""

    path: Path
    rows: int
    note_bytes: int
    size: int
    build_s: float
    created_at: str
    cached: bool = False
    notes: list[str] = field(default_factory=list)


def _note_path(database: Path) -> Path:
    return database.with_suffix(".json")


def _cached(database: Path, gigabytes: float, note_bytes: int) -> Built | None:
    """The cached database, if its note matches the size asked for and the file is intact."""
    note = _note_path(database)
    if not database.exists() or not note.exists():
        return None
    try:
        meta = json.loads(note.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if (
        meta.get("gigabytes") != gigabytes
        or meta.get("note_bytes") != note_bytes
        or meta.get("size") != database.stat().st_size
    ):
        return None
    return Built(
        database,
        meta["rows"],
        note_bytes,
        meta["size"],
        meta["build_s"],
        meta["created_at"],
        cached=True,
    )


def _build(database: Path, rows: int, note_bytes: int) -> tuple[int, float]:
    """Build `rows` spots at `database`; returns its size and the seconds it took."""
    started = time.perf_counter()
    demo_spots.create(rows, note_bytes=note_bytes, seed=SEED, target=database)
    return database.stat().st_size, time.perf_counter() - started


def database(workdir: Path, gigabytes: float, note_bytes: int, rebuild: bool) -> Built:
    """The cached bench database, or a new one of about `gigabytes` GB."""
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / f"spots-{gigabytes:g}GB.db"
    if not rebuild and (cached := _cached(path, gigabytes, note_bytes)) is not None:
        return cached
    for stale in (path, _note_path(path)):
        stale.unlink(missing_ok=True)
    calibration = workdir / "calibration.db"
    calibration.unlink(missing_ok=True)
    size, _ = _build(calibration, CALIBRATION_ROWS, note_bytes)
    calibration.unlink()
    per_row = size / CALIBRATION_ROWS
    target = gigabytes * GB
    rows = int(round(target / per_row, -4))
    notes = [f"calibration: {CALIBRATION_ROWS:,} rows -> {per_row:.1f} bytes/row"]
    size, build_s = _build(path, rows, note_bytes)
    if abs(size / target - 1) > SIZE_TOLERANCE:
        corrected = int(round(target / (size / rows), -4))
        notes.append(
            f"{rows:,} rows made {size_text(size)}, more than {SIZE_TOLERANCE:.0%} off "
            f"the target; rebuilt with {corrected:,} rows"
        )
        rows = corrected
        path.unlink()
        size, build_s = _build(path, rows, note_bytes)
    created_at = datetime.now(UTC).isoformat(timespec="seconds")
    meta = {
        "gigabytes": gigabytes,
        "note_bytes": note_bytes,
        "seed": SEED,
        "rows": rows,
        "size": size,
        "build_s": round(build_s, 1),
        "created_at": created_at,
    }
    _note_path(path).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return Built(path, rows, note_bytes, size, build_s, created_at, notes=notes)


# --- the checks -----------------------------------------------------------------------


def timed_out(result: CheckResult) -> bool:
    return result.status is Status.UNKNOWN and any(
        mark in (result.summary or "") for mark in TIMEOUT_MARKS
    )


@dataclass
class Measured:
    """One check: the first run, the repeated runs, and the results of the last run."""

    check: str
    first_s: float = 0.0
    runs: list[float] = field(default_factory=list)
    results: list[CheckResult] = field(default_factory=list)
    skipped: str = ""

    @property
    def median_s(self) -> float:
        return statistics.median(self.runs) if self.runs else self.first_s

    @property
    def timed_out(self) -> bool:
        return any(timed_out(result) for result in self.results)

    def status(self) -> str:
        if self.skipped:
            return "skipped"
        shown = [
            "UNKNOWN (timeout)" if timed_out(result) else result.status.name
            for result in self.results
        ]
        counts = Counter(shown)
        if len(self.results) == 1:
            return shown[0]
        return ", ".join(f"{count}× {status}" for status, count in counts.items())

    def summary(self) -> str:
        if self.skipped:
            return self.skipped
        return "; ".join(shorten(result.summary or "") for result in self.results)

    def runs_text(self) -> str:
        if not self.runs:
            return "- (not repeated)" if self.timed_out else "-"
        return ", ".join(f"{run:.3f}" for run in self.runs)


def evaluate(profile: Profile, check: str, **probe_args: Any) -> tuple[float, Any]:
    """One `Runbook.evaluate` in a fresh runbook (no memory of earlier failures)."""
    runbook = Runbook("bench", profile)
    started = time.perf_counter()
    finding = runbook.evaluate(check, **probe_args)
    return time.perf_counter() - started, finding


def measure(profile: Profile, check: str, repeat: int, bar: tqdm, **probe_args: Any) -> Measured:
    """The first run, then `repeat` runs unless it timed out or was skipped."""
    measured = Measured(check)
    measured.first_s, finding = evaluate(profile, check, **probe_args)
    measured.results, measured.skipped = finding.results, finding.skipped
    bar.update()
    if measured.timed_out or measured.skipped:
        bar.update(repeat)
        return measured
    for _ in range(repeat):
        elapsed, finding = evaluate(profile, check, **probe_args)
        measured.runs.append(elapsed)
        measured.results = finding.results
        bar.update()
    return measured


def measure_checks(profile: Profile, repeat: int) -> list[Measured]:
    with tqdm(total=len(CHECKS) * (repeat + 1), desc="checks", unit="run", leave=False) as bar:
        return [measure(profile, check, repeat, bar) for check in CHECKS]


def measure_integrity(profile: Profile, repeat: int) -> Measured:
    with tqdm(total=repeat, desc="integrity_check", unit="run", leave=False) as bar:
        return measure(
            profile,
            "database_integrity",
            repeat - 1,
            bar,
            full=True,
            budget_s=INTEGRITY_BUDGET_S,
        )


# --- the lock-holder scan -------------------------------------------------------------


@dataclass
class ScanTiming:
    label: str
    processes: int
    runs: list[float]
    rows: int
    holder: str  # the holder's lock as the scan reported it, or "-" when there is none

    @property
    def median_s(self) -> float:
        return statistics.median(self.runs)


def time_scan(
    profile: Profile, label: str, repeat: int, holder_pid: int | None = None
) -> ScanTiming:
    """One warm-up scan, then `repeat` timed ones; with `holder_pid`, each scan must name it."""
    runs, frame = [], None
    for index in tqdm(range(repeat + 1), desc=f"scan, {label}", unit="scan", leave=False):
        started = time.perf_counter()
        frame = sqlite_locks.scan(profile)
        elapsed = time.perf_counter() - started
        if index:
            runs.append(elapsed)
        if holder_pid is not None:
            found = frame[frame["pid"] == holder_pid]
            if found.empty or found.iloc[0]["lock"] != "SHARED":
                raise SystemExit(
                    f"benchmark failed: scan {index} ({label}) did not report the reader "
                    f"pid {holder_pid} holding SHARED; it found:\n{frame.to_string()}"
                )
    assert frame is not None
    holder = "-"
    if holder_pid is not None:
        holder = f"pid {holder_pid}: {frame[frame['pid'] == holder_pid].iloc[0]['lock']}"
    return ScanTiming(label, process_count(), runs, len(frame), holder)


def start_holder(path: Path, children: list[subprocess.Popen[Any]]) -> subprocess.Popen[str]:
    """A python child that holds SHARED on the database (an open SELECT) until killed."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER_SCRIPT, str(path), str(SLEEP_S)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    children.append(holder)
    line = holder.stdout.readline() if holder.stdout else ""
    if line.strip() != "ready":
        stderr = holder.stderr.read() if holder.stderr and holder.poll() is not None else ""
        raise SystemExit(f"benchmark failed: the reader did not start: {line!r} {stderr}")
    return holder


def start_sleepers(count: int, children: list[subprocess.Popen[Any]]) -> None:
    for _ in tqdm(range(count), desc="sleep processes", unit="proc", leave=False):
        children.append(
            subprocess.Popen(
                ["sleep", str(SLEEP_S)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )


def stop(children: list[subprocess.Popen[Any]]) -> None:
    """Kill and reap every child this benchmark started."""
    for child in children:
        if child.poll() is None:
            child.kill()
    for child in children:
        child.wait(timeout=30)
        for stream in (child.stdout, child.stderr):
            if stream is not None:
                stream.close()


def measure_scans(profile: Profile, path: Path, repeat: int, sleepers: int) -> list[ScanTiming]:
    timings = [time_scan(profile, "machine as it is", repeat)]
    children: list[subprocess.Popen[Any]] = []
    try:
        holder = start_holder(path, children)
        timings.append(time_scan(profile, "+ 1 reader holding SHARED", repeat, holder.pid))
        start_sleepers(sleepers, children)
        label = f"+ 1 reader + {sleepers} sleep processes"
        timings.append(time_scan(profile, label, repeat, holder.pid))
    finally:
        stop(children)
    return timings


# --- the report -----------------------------------------------------------------------


def table(header: list[str], rows: list[list[str]], right: set[int] | None = None) -> None:
    """A markdown table; columns in `right` are right-aligned."""
    right = right or set()
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---:" if i in right else "---" for i in range(len(header))) + "|")
    for row in rows:
        print("| " + " | ".join(cell(value) for value in row) + " |")


def report(
    built: Built,
    profile: Profile,
    checks: list[Measured],
    integrity: Measured,
    scans: list[ScanTiming],
    repeat: int,
    sleepers: int,
) -> None:
    target = profile.targets.database
    timeout_s = target.statement_timeout if target else 0
    origin = (
        f"cached, built {built.created_at} in {built.build_s:.0f} s"
        if built.cached
        else f"built now in {built.build_s:.0f} s"
    )
    print(
        f"\ndatabase: {built.path}, {size_text(built.size)}, {built.rows:,} spots "
        f"(note_bytes {built.note_bytes}, seed {SEED}; {origin})"
    )
    for note in built.notes:
        print(f"  {note}")
    print(
        f"profile {PROFILE}: statement_timeout {timeout_s:g} s, connect (busy) timeout "
        f"{target.connect_timeout if target else 0:g} s"
    )

    print(f"\n### morning-check probes (Runbook.evaluate; first run, then median of {repeat})\n")
    rows = [
        [
            measured.check,
            f"{measured.median_s:.3f}",
            f"{measured.first_s:.3f}",
            measured.runs_text(),
            measured.status(),
            measured.summary(),
        ]
        for measured in checks
    ]
    total_first = sum(measured.first_s for measured in checks)
    total_median = sum(measured.median_s for measured in checks)
    rows.append(["**all checks**", f"{total_median:.3f}", f"{total_first:.3f}", "", "", ""])
    table(["check", "median s", "first s", "runs s", "status", "summary"], rows, {1, 2})
    timeouts = [measured.check for measured in checks if measured.timed_out]
    print(
        f"\nstatement_timeout ({timeout_s:g} s) hit by: "
        + (", ".join(timeouts) if timeouts else "no check")
    )

    quick = next(measured for measured in checks if measured.check == "database_integrity")
    print("\n### quick_check vs integrity_check (database_integrity)\n")
    rows = [
        [
            "quick_check (default)",
            f"{quick.median_s:.3f}",
            quick.runs_text(),
            quick.status(),
            quick.summary(),
        ],
        [
            f"integrity_check (full=True, budget_s={INTEGRITY_BUDGET_S})",
            f"{integrity.median_s:.3f}",
            ", ".join(f"{run:.3f}" for run in [integrity.first_s, *integrity.runs]),
            integrity.status(),
            integrity.summary(),
        ],
    ]
    table(["pragma", "median s", "runs s", "status", "summary"], rows, {1})
    if quick.timed_out or integrity.timed_out:
        print("\nintegrity_check / quick_check: - (one of them did not finish)")
    else:
        print(
            f"\nintegrity_check / quick_check = {integrity.median_s / quick.median_s:.1f}x "
            f"(integrity_check: median of {1 + len(integrity.runs)} run(s), first run included)"
        )

    print(
        f"\n### lock-holder scan (sqlite_locks.scan: /proc/locks + every /proc/<pid>/fd; "
        f"1 warm-up, then median of {len(scans[0].runs)})\n"
    )
    base = scans[0].median_s
    rows = [
        [
            timing.label,
            f"{timing.processes:,}",
            f"{1000 * timing.median_s:.1f}",
            ", ".join(f"{1000 * run:.1f}" for run in timing.runs),
            f"{timing.median_s / base:.1f}x",
            str(timing.rows),
            timing.holder,
        ]
        for timing in scans
    ]
    table(
        ["processes running", "/proc pids", "median ms", "runs ms", "vs as is", "rows", "holder"],
        rows,
        {1, 2, 4, 5},
    )
    print(
        f"\nthe reader holding SHARED was found by every scan, with and without the "
        f"{sleepers} extra processes; all children killed and reaped"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--gigabytes",
        type=float,
        default=1.0,
        metavar="GB",
        help="size of the spots database in GB of 10^9 bytes (default 1.0)",
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=DEFAULT_WORKDIR,
        help=f"where the database is built and cached (default {DEFAULT_WORKDIR})",
    )
    parser.add_argument(
        "--rebuild", action="store_true", help="build the database even if a cached one fits"
    )
    parser.add_argument(
        "--note-bytes",
        type=int,
        default=NOTE_BYTES,
        metavar="N",
        help=f"bytes of `notes` per spot; fewer makes more rows per GB (default {NOTE_BYTES})",
    )
    parser.add_argument(
        "--repeat", type=int, default=3, metavar="N", help="runs of each check after the first"
    )
    parser.add_argument(
        "--integrity-repeat",
        type=int,
        default=1,
        metavar="N",
        help="runs of integrity_check (default 1: it is the slow one)",
    )
    parser.add_argument(
        "--scan-repeat", type=int, default=5, metavar="N", help="timed lock scans (default 5)"
    )
    parser.add_argument(
        "--sleepers",
        type=int,
        default=SLEEPERS,
        metavar="N",
        help=f"extra processes running during the last scans (default {SLEEPERS})",
    )
    args = parser.parse_args(argv)
    if args.gigabytes <= 0:
        parser.error("--gigabytes must be positive")
    if args.note_bytes < 0:
        parser.error("--note-bytes must not be negative")
    for name in ("repeat", "integrity_repeat", "scan_repeat"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.sleepers < 0:
        parser.error("--sleepers must not be negative")

    workdir = args.workdir.absolute()
    print(machine(workdir))
    built = database(workdir, args.gigabytes, args.note_bytes, args.rebuild)
    os.environ["SPOTS_DB"] = str(built.path)
    os.environ["OPSLIB_DATA_DIR"] = str(workdir)
    profile = load_profile(PROFILE)
    if profile.database_path() != built.path:
        raise SystemExit(f"benchmark failed: profile points at {profile.database_path()}")

    checks = measure_checks(profile, args.repeat)
    integrity = measure_integrity(profile, args.integrity_repeat)
    scans = measure_scans(profile, built.path, args.scan_repeat, args.sleepers)
    report(built, profile, checks, integrity, scans, args.repeat, args.sleepers)
    return 0


if __name__ == "__main__":
    sys.exit(main())
