"""Is opslib's log triage at least as fast as the shell pipeline it replaces, in flat memory?

At 3 AM an engineer answers "what is failing?" with
`zcat -f *.log* | grep ERROR | awk '{$1=""; $2=""; print}' | sort | uniq -c | sort -rn`;
`opslib.probes.logscan` answers it in one streaming pass (levels, normalized error patterns,
rate-limit signals, errors per hour) and the runbooks' log steps call it on every
schedule. If it is slower than the pipeline, or its memory grows with the logs, the
runbook is the worse tool. This benchmark measures both on the same files:

1. a log set of `--megabytes` MB (10^6 bytes, uncompressed) in `--workdir`: one file per
   UTC day over the last `--days` days, lines `2026-11-23T14:02:11Z LEVEL message` in time
   order across the files, the older files gzip-compressed (`.log.gz`, level 6) and the two
   most recent plain (`.log`), as logrotate with delaycompress leaves them. Levels are
   mostly INFO, some DEBUG and WARNING, about 4% ERROR; error messages come from 20
   templates whose ids, numbers, UUIDs, paths and IPs change on every line (so the pipeline
   sees thousands of "patterns" where there are 20), several with "HTTP 429" or "rate
   limit". Fixed seed; the generator counts every level as it writes and keeps the counts
   in a JSON note beside the files. The set is cached between runs unless `--rebuild`, or
   unless it ended more than 6 hours ago (a 24 h window would then hold less than a day);
2. each of these timed as a fresh process, the median of `--repeat` runs, the runs of
   all of them interleaved, with the files in the page cache (the checks of step 3 read
   them first):
   - `zcat -f FILES | grep -c ERROR`, the floor of any pass over the logs;
   - the pattern pipeline above, ending in `head -20`;
   - opslib's full triage: a small child script (written to the workdir) that feeds every
     file, oldest first, to `Scanner(since)` and reads `scanner.triage`, with no window
     (everything, as the pipeline) and with the 24 h window of a morning check; it prints
     a JSON summary and its peak RSS (`ru_maxrss`);
   - if this opslib has it, `logscan.scan(files, since)`, the entry point its log probes
     call (it may spread the files over worker processes), with and without the window;
   throughput is MB/s of the uncompressed input. Targets: full triage as the log probes
   run it (`scan()` without a window; the Scanner loop for an opslib without `scan()`) /
   pattern pipeline >= 1.0 in throughput, and opslib's peak RSS <= 150 MB and about the
   same (within 25%) at 100 MB and at 1 GB: each run stores its figures in the workdir
   and the RSS table shows every size measured so far;
3. whether the answers are honest: opslib's ERROR count (no window) against the
   generator's count and `grep -c` of the lines whose level field is ERROR, its 24 h count
   against awk over the same stamps, its level counts against the generator's, whether its
   patterns and its errors per hour add up to its error-level lines, its rate-limited lines
   against `grep -c -i -E 'rate[ _-]?limit|\\b429\\b'` (a standalone 429), and its top 5
   normalized patterns beside the generator's 5 most frequent templates; `scan()` must
   find the same triage as the Scanner loop. The benchmark fails (exit 1) if a count
   differs.

The shell tools run with LC_ALL=C, their fastest setting, so the pipeline's figure is the
best it can do. The opslib children import a copy of opslib's source taken when the run
starts (its hash and commit are printed and stored with the figures; byte-compiled once,
as an installed package is), so an edit to the checkout while the benchmark runs cannot
mix two versions in one table. `--profile` adds
a cProfile of the Scanner loop without a window (top 15 by tottime).

    .venv/bin/python bench/log_triage.py [--megabytes 100] [--days 7] [--repeat 3] [--rebuild]
"""

from __future__ import annotations

import argparse
import compileall
import gzip
import hashlib
import importlib.util
import json
import os
import random
import re
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import textwrap
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from machine import describe
from tqdm import tqdm

DEFAULT_WORKDIR = Path("/tmp/opslib-bench-logs")
MB = 10**6
SEED = 23
GENERATOR_VERSION = 1  # bump when the generated text changes, so cached sets are rebuilt
PLAIN_FILES = 2  # the most recent files stay uncompressed
GZIP_LEVEL = 6  # gzip's own default
STALE_AFTER_H = 6
WINDOW = timedelta(hours=24)
CALIBRATION_LINES = 50_000
CHUNK_LINES = 20_000
TARGET_RATIO = 1.0
TARGET_RSS_MB = 150
SAME_RSS_TOLERANCE = 1.25  # "about the same": largest / smallest peak RSS
PROFILE_LINES = 15
TOP_PATTERNS = 5
SHELL_ENV = {**os.environ, "LC_ALL": "C"}
PATTERN_WIDTH = 90

# (level, weight, message); {field} is replaced by a fresh value on every line (FIELDS).
# Level weights: INFO 84, DEBUG 8, WARNING 4, ERROR 4 (%).
TEMPLATES: list[tuple[str, float, str]] = [
    ("INFO", 30, "GET /api/v1/items/{id} 200 {ms} ms from {ip}"),
    ("INFO", 18, "POST /api/v1/orders 201 {ms} ms from {ip} request {uuid}"),
    ("INFO", 12, "job {id} finished in {ms} ms ({n} rows)"),
    ("INFO", 10, "processed batch {id}: {n} records from {path}"),
    ("INFO", 8, "heartbeat from {host}: {n} jobs queued, {pct}% cpu"),
    ("INFO", 6, "cache hit ratio {pct}% on {host}"),
    ("DEBUG", 5, "sql: SELECT * FROM items WHERE id = {id} ({ms} ms)"),
    ("DEBUG", 3, "connection pool {host}: {n} idle, {n} busy"),
    ("WARNING", 1.5, "slow query on {host}: {ms} ms"),
    ("WARNING", 1, "client {ip} close to its rate limit ({n}/1000 requests per minute)"),
    ("WARNING", 1, "GET /api/v1/search 429 {ms} ms from {ip}"),
    ("WARNING", 0.5, "retry {n}/5 for request {uuid} after upstream ERROR from {host}"),
    # ERROR: 4% of the lines, shared by weight among the templates below
    (
        "ERROR",
        14,
        "upstream api.partner.example returned HTTP 429 Too Many Requests for order {id} (retry after {n} s)",
    ),
    ("ERROR", 12, "request {uuid} failed: connection refused by {ip}:{port}"),
    ("ERROR", 10, "rate limit exceeded for tenant {tenant}: {n} requests in the last 60 s"),
    ("ERROR", 9, "timeout after {ms} ms waiting for {host} (request {uuid})"),
    ("ERROR", 8, "could not open {path}: No such file or directory"),
    ("ERROR", 6, "job {id} crashed with exit code {n}"),
    (
        "ERROR",
        5,
        "failed to upload {path} to s3://ingest-bucket/{uuid}.parquet: HTTP 503 Slow Down",
    ),
    ("ERROR", 5, "authentication failed for user {id} from {ip}: invalid token"),
    (
        "ERROR",
        4,
        "deadlock detected on relation {id}, process {n} waits for ShareLock on transaction {id}",
    ),
    ("ERROR", 4, "HTTP 500 from https://{host}/api/v2/items/{id} in {ms} ms"),
    (
        "ERROR",
        4,
        "GitHub API returned HTTP 429: secondary rate limit, {n}/5000 requests used this hour",
    ),
    ("ERROR", 3, "worker {n} killed: out of memory (requested {id} bytes, limit {id} bytes)"),
    ("ERROR", 3, "checksum mismatch for {path}: expected {hex}, got {hex}"),
    ("ERROR", 3, "message {uuid} moved to the dead-letter queue after {n} attempts"),
    (
        "ERROR",
        3,
        "invalid JSON in payload {uuid}: Expecting value: line {n} column {n} (char {id})",
    ),
    ("ERROR", 3, "task ingest.process_batch[{uuid}] raised KeyError: 'customer_id'"),
    ("ERROR", 2, "lock wait timeout exceeded; session {id} rolled back"),
    ("ERROR", 2, "disk {mount} is {pct}% full, writes to {path} failed"),
    ("ERROR", 2, "SSL handshake with {ip}:{port} failed: certificate verify failed"),
    ("ERROR", 1, "GPU {n} reported an uncorrectable ECC error at address 0x{hex}"),
]
LEVEL_SHARES = {"INFO": 0.84, "DEBUG": 0.08, "WARNING": 0.04, "ERROR": 0.04}
# what opslib.probes.logscan counts as a rate-limit signal, to label the generator's templates
RATE_LIMIT = re.compile(r"rate[ _-]?limit|\b429\b")

TENANTS = ("acme", "globex", "initech", "umbrella", "hooli")
HOSTS = ("db", "cache", "api", "worker", "queue")
DIRECTORIES = ("ingest", "exports", "spool", "thumbnails")
MOUNTS = ("/", "/var", "/data", "/scratch")
PORTS = (443, 5432, 6379, 8080, 9092)


def _uuid(rng: random.Random) -> str:
    text = f"{rng.getrandbits(128):032x}"
    return f"{text[:8]}-{text[8:12]}-4{text[13:16]}-{text[16:20]}-{text[20:]}"


FIELDS = {
    "id": lambda rng: str(rng.randrange(10**5, 10**9)),
    "n": lambda rng: str(rng.randrange(1, 1000)),
    "ms": lambda rng: str(rng.randrange(2, 30_000)),
    "pct": lambda rng: str(rng.randrange(0, 101)),
    "ip": lambda rng: f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}",
    "port": lambda rng: str(rng.choice(PORTS)),
    "uuid": _uuid,
    "hex": lambda rng: f"{rng.getrandbits(64):016x}",
    "host": lambda rng: f"{rng.choice(HOSTS)}-{rng.randrange(1, 40):02d}.internal",
    "path": lambda rng: (
        f"/var/data/{rng.choice(DIRECTORIES)}/{rng.randrange(10**6)}/"
        f"part-{rng.randrange(10_000):05d}.parquet"
    ),
    "tenant": lambda rng: rng.choice(TENANTS),
    "mount": lambda rng: rng.choice(MOUNTS),
}

# Runs in a fresh interpreter: what a runbook step pays, import and all.
CHILD_SCRIPT = textwrap.dedent(
    '''
    """opslib's triage of the log files given (oldest first), as one JSON line.

    Written by bench/log_triage.py; `--profile N` adds cProfile's top N lines by tottime.
    Guarded by __main__: scan()'s spawned workers import this file again.
    """

    import argparse
    import json
    import resource
    import sys
    import time
    from datetime import datetime
    from pathlib import Path

    from opslib.probes import logscan
    from opslib.probes.logscan import Scanner


    def main():
        parser = argparse.ArgumentParser()
        parser.add_argument("--since", help="naive UTC ISO time; without it, everything")
        parser.add_argument("--api", choices=["scanner", "scan"], default="scanner")
        parser.add_argument("--profile", type=int, default=0, metavar="LINES")
        parser.add_argument("files", nargs="+", type=Path)
        args = parser.parse_args()
        since = datetime.fromisoformat(args.since) if args.since else None

        profiler = None
        if args.profile:  # imported only then: a plain run pays for opslib alone
            import cProfile

            profiler = cProfile.Profile()
        started = time.perf_counter()
        if profiler:
            profiler.enable()
        if args.api == "scanner":  # one process, the files oldest first
            scanner = Scanner(since)
            for path in args.files:
                scanner.read(path)
            triage = scanner.triage
        else:  # what the log probes call: may spread the files over worker processes
            triage = logscan.scan(args.files, since)
        if profiler:
            profiler.disable()
        scan_s = time.perf_counter() - started

        top = [
            [pattern.count, key, pattern.first.isoformat(), pattern.last.isoformat()]
            for key, pattern in triage.top_patterns(5)
        ]
        summary = {
            "files": triage.files,
            "bytes_read": triage.bytes_read,
            "lines": triage.lines,
            "levels": dict(triage.levels),
            "errors": triage.levels["ERROR"],
            "error_levels": triage.errors,
            "pattern_lines": sum(pattern.count for pattern in triage.patterns.values()),
            "hour_lines": sum(triage.errors_per_hour.values()),
            "rate_limited": triage.rate_limited,
            "patterns": len(triage.patterns),
            "hours_with_errors": len(triage.errors_per_hour),
            "top": top,
            "scan_s": scan_s,
            "maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
            "worker_maxrss_kib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
            "module": logscan.__file__,
        }
        print(json.dumps(summary))
        if profiler:
            import pstats

            stats = pstats.Stats(profiler, stream=sys.stdout).sort_stats("tottime")
            stats.print_stats(args.profile)


    if __name__ == "__main__":
        main()
    '''
).lstrip()


def machine(workdir: Path) -> str:
    """The machine and the shell tools' versions, for reading numbers elsewhere."""
    versions = []
    for command in (["zcat", "--version"], ["grep", "--version"], ["sort", "--version"]):
        output = subprocess.run(command, capture_output=True, text=True, check=False).stdout
        versions.append(output.splitlines()[0] if output else command[0])
    awk = Path(shutil.which("awk") or "awk").resolve().name
    return (
        f"{describe()}\ntools: {', '.join(versions)}, awk = {awk}; shell pipelines run with "
        f"LC_ALL=C; workdir {workdir}"
    )


def _source_hash(package: Path) -> str:
    digest = hashlib.sha1()
    for path in sorted(package.rglob("*.py")):
        digest.update(path.relative_to(package).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


@dataclass
class Snapshot:
    """A copy of opslib's source, taken when the run starts, that every opslib child
    imports: the figures then belong to one version of the code even if the checkout is
    edited while the benchmark runs. `commit` names where the copy came from."""

    package: Path
    copy: Path
    source: str
    commit: str

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "PYTHONPATH": str(self.copy.parent)}

    @property
    def has_scan(self) -> bool:
        """Whether this opslib has `logscan.scan(files, since)`, what its log probes call."""
        places = (self.copy / "logscan.py", self.copy / "probes" / "logscan" / "parallel.py")
        return any(
            path.exists() and "\ndef scan(" in path.read_text(encoding="utf-8") for path in places
        )

    def changed_since(self) -> str | None:
        """The checkout's source hash now, if it is no longer the one copied."""
        now = _source_hash(self.package)
        return now if now != self.source else None


def snapshot(workdir: Path) -> Snapshot:
    spec = importlib.util.find_spec("opslib")
    if spec is None or spec.origin is None:
        raise SystemExit("benchmark failed: opslib is not importable from this Python")
    package = Path(spec.origin).parent
    copy = workdir / "opslib-snapshot" / "opslib"
    shutil.rmtree(copy.parent, ignore_errors=True)
    shutil.copytree(package, copy, ignore=shutil.ignore_patterns("__pycache__"))
    # byte-compiled once, as an installed package is: with PYTHONDONTWRITEBYTECODE set
    # every child would otherwise compile opslib's source again
    compileall.compile_dir(copy, quiet=1)

    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", "-C", str(package.parent), *args], capture_output=True, text=True, check=False
        )
        return done.stdout if done.returncode == 0 else ""

    commit = git("rev-parse", "--short", "HEAD").strip() or "no git commit"
    changed = [
        line.split(maxsplit=1)[1]
        for line in git("status", "--porcelain", "--", package.name).splitlines()
    ]
    if changed:
        commit += f" + uncommitted changes in {', '.join(changed)}"
    return Snapshot(package, copy, _source_hash(copy), commit)


def cell(text: str) -> str:
    """Text safe inside a markdown table cell."""
    return text.replace("|", "\\|")


def shorten(text: str, width: int = PATTERN_WIDTH) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def table(header: list[str], rows: list[list[str]], right: set[int] | None = None) -> None:
    """A markdown table; columns in `right` are right-aligned."""
    right = right or set()
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---:" if i in right else "---" for i in range(len(header))) + "|")
    for row in rows:
        print("| " + " | ".join(cell(value) for value in row) + " |")


def stamp(moment: datetime) -> str:
    """The log's own timestamp format, for a naive UTC datetime."""
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def utc_now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None, microsecond=0)


# --- the log set ----------------------------------------------------------------------


@dataclass
class LogSet:
    """The generated files (oldest first) and the generator's note about them."""

    directory: Path
    note: dict[str, Any]
    cached: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def files(self) -> list[Path]:
        return [self.directory / entry["name"] for entry in self.note["files"]]

    @property
    def uncompressed(self) -> int:
        return sum(entry["bytes"] for entry in self.note["files"])

    @property
    def on_disk(self) -> int:
        return sum(entry["on_disk"] for entry in self.note["files"])

    @property
    def end(self) -> datetime:
        return datetime.fromisoformat(self.note["end"])


def _entries() -> tuple[list[tuple[str, str]], list[float]]:
    """Every (level, message template) and its cumulative weight over all lines."""
    totals = Counter()
    for level, weight, _ in TEMPLATES:
        totals[level] += weight
    entries, cumulative, running = [], [], 0.0
    for level, weight, message in TEMPLATES:
        running += LEVEL_SHARES[level] * weight / totals[level]
        entries.append((level, message))
        cumulative.append(running)
    return entries, cumulative


class _Fields(dict):
    """Fresh field values for one line: every {name} is drawn when the template asks."""

    def __init__(self, rng: random.Random) -> None:
        super().__init__()
        self.rng = rng

    def __missing__(self, name: str) -> str:
        return FIELDS[name](self.rng)


def _lines(rng: random.Random, count: int) -> tuple[list[str], list[int]]:
    """`count` lines without their timestamps ("LEVEL message\\n"), and which entry each is."""
    entries, cumulative = _entries()
    chosen = rng.choices(range(len(entries)), cum_weights=cumulative, k=count)
    lines = []
    for index in chosen:
        level, message = entries[index]
        lines.append(f"{level} {message.format_map(_Fields(rng))}\n")
    return lines, chosen


def _average_line_bytes() -> float:
    rng = random.Random(SEED + 1)
    lines, _ = _lines(rng, CALIBRATION_LINES)
    return len("2026-11-23T14:02:11Z ") + sum(map(len, lines)) / CALIBRATION_LINES


def _open_log(path: Path, compressed: bool) -> Any:
    if compressed:
        return gzip.open(path, "wb", compresslevel=GZIP_LEVEL)
    return path.open("wb")


def generate(directory: Path, megabytes: float, days: float, end: datetime) -> dict[str, Any]:
    """Write the log set into `directory` and return its note: files, counts, seed."""
    started = time.perf_counter()
    total_lines = round(megabytes * MB / _average_line_bytes())
    start = end - timedelta(days=days)
    start_s, span_s = int(start.replace(tzinfo=UTC).timestamp()), int(days * 86_400)
    first_day, last_day = start_s // 86_400, (start_s + span_s) // 86_400
    file_days = list(range(first_day, last_day + 1))

    rng = random.Random(SEED)
    entries, _ = _entries()
    chosen_counts: Counter[int] = Counter()
    files: list[dict[str, Any]] = []
    stream, day, last_second, text_stamp = None, None, -1, ""
    buffer: list[str] = []

    def close() -> None:
        if stream is None:
            return
        data = "".join(buffer).encode()
        stream.write(data)
        files[-1]["bytes"] += len(data)
        buffer.clear()
        stream.close()
        files[-1]["on_disk"] = (directory / files[-1]["name"]).stat().st_size

    with tqdm(total=total_lines, desc="generate", unit="line", unit_scale=True, leave=False) as bar:
        for chunk_start in range(0, total_lines, CHUNK_LINES):
            count = min(CHUNK_LINES, total_lines - chunk_start)
            lines, chosen = _lines(rng, count)
            chosen_counts.update(chosen)
            for offset, line in enumerate(lines):
                second = start_s + (chunk_start + offset) * span_s // total_lines
                if second != last_second:
                    last_second = second
                    if second // 86_400 != day:
                        close()
                        day = second // 86_400
                        date = datetime.fromtimestamp(day * 86_400, UTC).date().isoformat()
                        compressed = file_days.index(day) < len(file_days) - PLAIN_FILES
                        name = f"app-{date}.log" + (".gz" if compressed else "")
                        stream = _open_log(directory / name, compressed)
                        files.append({"name": name, "lines": 0, "bytes": 0, "on_disk": 0})
                    text_stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ ", time.gmtime(second))
                buffer.append(text_stamp)
                buffer.append(line)
                files[-1]["lines"] += 1
            data = "".join(buffer).encode()
            stream.write(data)
            files[-1]["bytes"] += len(data)
            buffer.clear()
            bar.update(count)
        close()

    levels: Counter[str] = Counter()
    error_templates: Counter[str] = Counter()
    rate_limit_lines = mention_error_lines = 0
    for index, count in chosen_counts.items():
        level, message = entries[index]
        levels[level] += count
        if level == "ERROR":
            error_templates[message] += count
        if RATE_LIMIT.search(message.lower()):
            rate_limit_lines += count
        if "ERROR" in f"{level} {message}":
            mention_error_lines += count
    return {
        "generator_version": GENERATOR_VERSION,
        "megabytes": megabytes,
        "days": days,
        "seed": SEED,
        "start": stamp(start),
        "end": datetime.fromtimestamp(start_s + (total_lines - 1) * span_s // total_lines, UTC)
        .replace(tzinfo=None)
        .isoformat(),
        "built_at": stamp(utc_now()),
        "build_s": round(time.perf_counter() - started, 1),
        "lines": total_lines,
        "levels": dict(levels),
        "errors": levels["ERROR"],
        "lines_containing_ERROR": mention_error_lines,
        "rate_limit_template_lines": rate_limit_lines,
        "error_templates": dict(error_templates.most_common()),
        "files": files,
    }


def _cached(directory: Path, megabytes: float, days: float) -> tuple[LogSet | None, str]:
    """The cached set if its note matches and its files are intact, else why not."""
    note_path = directory / "note.json"
    if not note_path.exists():
        return None, ""
    try:
        note = json.loads(note_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None, "its note could not be read"
    wanted = {"generator_version": GENERATOR_VERSION, "megabytes": megabytes, "days": days}
    if any(note.get(key) != value for key, value in wanted.items()) or note.get("seed") != SEED:
        return None, "it was made with other settings"
    for entry in note["files"]:
        path = directory / entry["name"]
        if not path.exists() or path.stat().st_size != entry["on_disk"]:
            return None, f"{entry['name']} is missing or changed"
    logs = LogSet(directory, note, cached=True)
    age_h = (utc_now() - logs.end).total_seconds() / 3600
    if age_h > STALE_AFTER_H:
        return None, (
            f"it ended {age_h:.1f} h ago (more than {STALE_AFTER_H} h: a 24 h window "
            "would hold less than a day)"
        )
    return logs, ""


def log_set(workdir: Path, megabytes: float, days: float, rebuild: bool) -> LogSet:
    """The cached log set of `megabytes` MB, or a new one ending now."""
    directory = workdir / f"{megabytes:g}MB"
    notes = []
    if not rebuild:
        cached, why_not = _cached(directory, megabytes, days)
        if cached is not None:
            return cached
        if why_not:
            notes.append(f"cached set not used: {why_not}; rebuilt")
    building = workdir / f"{megabytes:g}MB.building"
    shutil.rmtree(building, ignore_errors=True)
    building.mkdir(parents=True)
    note = generate(building, megabytes, days, utc_now())
    (building / "note.json").write_text(json.dumps(note, indent=2) + "\n", encoding="utf-8")
    shutil.rmtree(directory, ignore_errors=True)
    building.rename(directory)
    return LogSet(directory, note, notes=notes)


# --- the measurements -----------------------------------------------------------------


@dataclass
class Method:
    """One way of answering, run as a fresh process; its runs and its last output.
    `api` is None for a shell pipeline, else which opslib entry point the child calls."""

    label: str
    command: list[str]
    env: dict[str, str] | None = None
    api: str | None = None
    since: datetime | None = None
    runs: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    output: str = ""

    @property
    def median_s(self) -> float:
        return statistics.median(self.runs)

    def run(self) -> None:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        done = subprocess.run(
            self.command, env=self.env, capture_output=True, text=True, check=False
        )
        elapsed = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if done.returncode != 0:
            raise SystemExit(
                f"benchmark failed: {self.label} exited with {done.returncode}: "
                f"{done.stderr.strip()[-2000:]}"
            )
        self.runs.append(elapsed)
        self.cpu.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
        self.output = done.stdout

    def summary(self) -> dict[str, Any]:
        """The child's JSON line (opslib methods only)."""
        return json.loads(self.output.splitlines()[0])


def shell(script: str, files: list[Path]) -> list[str]:
    return ["bash", "-c", script.replace("FILES", shlex.join(map(str, files)))]


def opslib_method(
    label: str, child: Path, files: list[Path], opslib: Snapshot, api: str, since: datetime | None
) -> Method:
    window = ["--since", since.isoformat()] if since else []
    command = [sys.executable, str(child), "--api", api, *window, *map(str, files)]
    return Method(label, command, opslib.env, api, since)


# the independent counts opslib's are checked against (shell, LC_ALL=C)
CHECKS = {
    "level_errors": "zcat -f FILES | grep -c -E '^[^ ]+ ERROR( |$)'",
    "window_errors": (
        "zcat -f FILES | awk -v since=SINCE "
        "'$2 == \"ERROR\" && $1 >= since { n++ } END { print n + 0 }'"
    ),
    "rate_limited": "zcat -f FILES | grep -c -i -E 'rate[ _-]?limit|\\b429\\b'",
}


def check_counts(files: list[Path], since: datetime) -> dict[str, int]:
    """ERROR lines by their level field, all and at or after `since`, and lines that say
    "rate limit" or a standalone 429. These also put the files in the page cache before
    anything is timed."""
    counts = {}
    for name, script in CHECKS.items():
        done = subprocess.run(
            shell(script.replace("SINCE", stamp(since)), files),
            env=SHELL_ENV,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode not in (0, 1):  # grep -c: 1 is "no line matched"
            raise SystemExit(f"benchmark failed: {script}: {done.stderr.strip()}")
        counts[name] = int(done.stdout)
    return counts


def measure(methods: list[Method], repeat: int) -> None:
    """`repeat` rounds, each running every method once, so that a slow moment of the
    machine does not fall on one method only."""
    with tqdm(total=repeat * len(methods), desc="timed runs", unit="run", leave=False) as bar:
        for _ in range(repeat):
            for method in methods:
                method.run()
                bar.update()


def profile(method: Method) -> str:
    """cProfile's top lines by tottime for one more run of an opslib method."""
    command = [*method.command[:2], "--profile", str(PROFILE_LINES), *method.command[2:]]
    done = subprocess.run(command, env=method.env, capture_output=True, text=True, check=True)
    return done.stdout.split("\n", 1)[1]


# --- the report -----------------------------------------------------------------------


def size_text(size: int) -> str:
    return f"{size / MB:,.1f} MB"


def remember(workdir: Path, logs: LogSet, results: dict[str, Any]) -> dict[str, Any]:
    """Store this size's figures beside earlier ones; returns them all, by size."""
    path = workdir / "results.json"
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        stored = {}
    stored[f"{logs.note['megabytes']:g}"] = results
    path.write_text(json.dumps(stored, indent=2) + "\n", encoding="utf-8")
    return stored


def report_set(logs: LogSet, since: datetime, in_window: int) -> None:
    note = logs.note
    compressed = sum(entry["name"].endswith(".gz") for entry in note["files"])
    origin = (
        f"cached, built {note['built_at']} in {note['build_s']:.0f} s"
        if logs.cached
        else f"built now in {note['build_s']:.0f} s"
    )
    print(
        f"\nlog set: {logs.directory}, {len(logs.files)} daily files ({compressed} .log.gz, "
        f"{len(logs.files) - compressed} .log), {size_text(logs.uncompressed)} uncompressed, "
        f"{size_text(logs.on_disk)} on disk, {note['lines']:,} lines, "
        f"{note['start']} .. {note['end']}Z ({note['days']:g} days), seed {note['seed']}; {origin}"
    )
    for line in logs.notes:
        print(f"  {line}")
    print(
        f"24 h window: since {stamp(since)} (now - 24 h), holding {in_window:,} of the "
        f"{note['errors']:,} ERROR lines ({in_window / max(note['errors'], 1):.0%})\n"
    )
    rows = [
        [
            entry["name"],
            f"{entry['lines']:,}",
            f"{entry['bytes'] / MB:,.1f}",
            f"{entry['on_disk'] / MB:,.1f}",
        ]
        for entry in note["files"]
    ]
    table(["file", "lines", "uncompressed MB", "on disk MB"], rows, {1, 2, 3})


def _output(method: Method) -> str:
    if method.api is None:
        lines = method.output.splitlines()
        if len(lines) == 1:
            return f"{int(lines[0]):,} lines contain ERROR"
        return f"{len(lines)} lines; top: {shorten(lines[0], 60) if lines else '-'}"
    found = method.summary()
    return (
        f"{found['errors']:,} ERROR, {found['patterns']:,} patterns, "
        f"{found['scan_s']:.2f} s inside the child"
    )


def report_timings(methods: list[Method], logs: LogSet, repeat: int) -> None:
    megabytes = logs.uncompressed / MB
    print(
        f"\n### timings (a fresh process each, median of {repeat}; MB/s of the "
        f"{megabytes:,.1f} MB uncompressed input, {size_text(logs.on_disk)} on disk)\n"
    )
    rows = [
        [
            method.label,
            f"{method.median_s:.2f}",
            ", ".join(f"{run:.2f}" for run in method.runs),
            f"{statistics.median(method.cpu):.2f}",
            f"{megabytes / method.median_s:,.1f}",
            _output(method),
        ]
        for method in methods
    ]
    table(["what", "median s", "runs s", "CPU s", "MB/s", "output"], rows, {1, 3, 4})
    print(
        "\n(CPU s: user + system of every process of the run, workers included; a pipeline's "
        "stages run on several cores at once)"
    )


def report_ratio(methods: list[Method]) -> bool:
    """opslib / pattern pipeline in throughput for every opslib run. The verdict is that of
    the full triage as the log probes run it: `logscan.scan()` without a window (on every
    core), or the Scanner loop for an opslib without `scan()`."""
    pipeline = methods[1]
    judged = _judged(methods)
    print()
    for method in methods[2:]:
        ratio = pipeline.median_s / method.median_s
        if method is judged:
            verdict = "PASS" if ratio >= TARGET_RATIO else "MISS"
            target = f"the target, >= {TARGET_RATIO:.1f}: {verdict}"
        elif method.since is None:
            target = "information: one process, not what the log probes call"
        else:
            target = "information: the pipeline has no window"
        print(
            f"{method.label[4:]} / pattern pipeline = {ratio:.2f} in throughput "
            f"({pipeline.median_s:.2f} s / {method.median_s:.2f} s; {target})"
        )
    ratio = pipeline.median_s / judged.median_s
    print(
        f"\nfull triage as the log probes run it ({judged.label[4:]}) / pattern pipeline = "
        f"{ratio:.2f}: {'PASS' if ratio >= TARGET_RATIO else 'MISS'} (target >= "
        f"{TARGET_RATIO:.1f})"
    )
    return ratio >= TARGET_RATIO


def _judged(methods: list[Method]) -> Method:
    """The run the throughput target is judged on (see `report_ratio`)."""
    full = [method for method in methods[2:] if method.since is None]
    return next((method for method in full if method.api == "scan"), full[0])


def _peaks(result: dict[str, Any]) -> list[float]:
    return [value * 1024 / MB for key, value in result.items() if key.endswith("rss_kib")]


def report_rss(stored: dict[str, Any], current: str, source: str) -> None:
    """Peak RSS at every size measured so far with this same opslib source; sizes last
    measured with other code are listed but left out of the verdicts."""
    print(
        "\n### opslib peak RSS in MB (ru_maxrss of the child; for scan(), also of its "
        "largest worker), every size measured in this workdir\n"
    )
    columns = {
        "rss_kib": "Scanner, no window",
        "window_rss_kib": "Scanner, 24 h",
        "scan_rss_kib": "scan(), no window",
        "scan_worker_rss_kib": "scan() worker",
    }
    rows = []
    for size in sorted(stored, key=float):
        result = stored[size]
        rows.append(
            [
                f"{float(size):g} MB",
                *(f"{result[key] * 1024 / MB:.1f}" if key in result else "-" for key in columns),
                result.get("opslib_source", "?"),
                "this run" if size == current else f"earlier run, {result['measured_at']}",
            ]
        )
    table(["log set", *columns.values(), "opslib", "measured"], rows, {1, 2, 3, 4})
    same_code = [result for result in stored.values() if result.get("opslib_source") == source]
    peaks = [max(_peaks(result)) for result in same_code]
    within = max(peaks) <= TARGET_RSS_MB
    print(
        f"\npeak RSS of any one process <= {TARGET_RSS_MB} MB at every size measured with "
        f"opslib {source}: {'PASS' if within else 'MISS'} (largest {max(peaks):.1f} MB)"
    )
    if len(same_code) > 1:
        spread = max(peaks) / min(peaks)
        verdict = "PASS" if spread <= SAME_RSS_TOLERANCE else "MISS"
        print(
            f"about the same at every size (largest / smallest peak <= "
            f"{SAME_RSS_TOLERANCE:g}): {verdict} ({spread:.2f})"
        )
    else:
        print(
            "about the same at every size: run another --megabytes with this opslib source "
            "to compare"
        )


def report_honesty(
    logs: LogSet, methods: list[Method], since: datetime, expected: dict[str, int]
) -> bool:
    note = logs.note
    count, _, scanner, *_ = methods
    found = scanner.summary()
    print("\n### are the counts honest?\n")
    rows = [
        ["generator (note.json): lines written as ERROR", f"{note['errors']:,}"],
        [
            "zcat -f | grep -c -E '^[^ ]+ ERROR( |$)' (the level field)",
            f"{expected['level_errors']:,}",
        ],
        [
            f"zcat -f | awk: level ERROR and stamp >= {stamp(since)}",
            f"{expected['window_errors']:,}",
        ],
        [
            "zcat -f | grep -c ERROR (timed run 1; WARNING lines mention ERROR too)",
            f"{int(count.output):,}",
        ],
        ["zcat -f | grep -c -i -E 'rate[ _-]?limit|\\b429\\b'", f"{expected['rate_limited']:,}"],
    ]
    table(["independent count", "lines"], rows, {1})
    print(
        f"\n(generator: {note['lines_containing_ERROR'] - note['errors']:,} lines whose level is "
        f"not ERROR say ERROR; {note['rate_limit_template_lines']:,} lines come from templates "
        "that say 'rate limit' or 429, grep's others have a number 429 in them)\n"
    )
    ok = note["errors"] == expected["level_errors"]
    if not ok:
        print("the generator's ERROR count and grep's differ: the log set is not what it says\n")
    rows = []
    for method in methods[2:]:
        summary = method.summary()
        errors = expected["window_errors"] if method.since else expected["level_errors"]
        problems = []
        if summary["errors"] != errors:
            problems.append(f"ERROR {summary['errors'] - errors:+,}")
        for part, key in (("patterns", "pattern_lines"), ("per hour", "hour_lines")):
            if summary[key] != summary["error_levels"]:
                problems.append(f"{part} add up to {summary[key] - summary['error_levels']:+,}")
        rate = "-"
        if method.since is None:
            rate = f"{summary['rate_limited']:,}"
            if summary["rate_limited"] != expected["rate_limited"]:
                problems.append(
                    f"rate-limited {summary['rate_limited'] - expected['rate_limited']:+,}"
                )
        ok = ok and not problems
        rows.append(
            [
                method.label[4:],
                f"{summary['errors']:,} (expected {errors:,})",
                f"{summary['pattern_lines']:,}",
                f"{summary['hour_lines']:,}",
                rate,
                "MATCH" if not problems else "MISMATCH: " + "; ".join(problems),
            ]
        )
    table(
        ["run", "ERROR lines", "sum of patterns", "sum per hour", "rate-limited", ""],
        rows,
        {2, 3, 4},
    )
    print(f"\nlevels, {scanner.label[4:]}\n")
    levels = sorted(set(note["levels"]) | set(found["levels"]))
    rows = [
        [
            level,
            f"{note['levels'].get(level, 0):,}",
            f"{found['levels'].get(level, 0):,}",
            "" if note["levels"].get(level, 0) == found["levels"].get(level, 0) else "differs",
        ]
        for level in levels
    ]
    rows.append(["all lines", f"{note['lines']:,}", f"{found['lines']:,}", ""])
    rows[-1][3] = "" if note["lines"] == found["lines"] else "differs"
    table(["level", "generator", "opslib", ""], rows, {1, 2})
    ok = ok and all(row[3] == "" for row in rows)
    return same_triage(methods) and ok


def same_triage(methods: list[Method]) -> bool:
    """scan() must find what the Scanner loop finds, window for window."""
    pairs = [
        (first, second)
        for first in methods[2:]
        for second in methods[2:]
        if first.api == "scanner" and second.api == "scan" and first.since == second.since
    ]
    if not pairs:
        return True
    keys = ("levels", "lines", "rate_limited", "patterns", "hours_with_errors", "top")
    same = True
    print()
    for first, second in pairs:
        one, other = first.summary(), second.summary()
        differ = [key for key in keys if one[key] != other[key]]
        same = same and not differ
        print(
            f"{second.label[4:]} against {first.label[4:]}: "
            + ("the same triage" if not differ else f"DIFFERENT {', '.join(differ)}")
        )
    return same


def report_patterns(logs: LogSet, scanner: Method) -> None:
    found = scanner.summary()
    templates = logs.note["error_templates"]
    print(
        f"\n### opslib's top {TOP_PATTERNS} normalized patterns, {scanner.label[4:]} "
        f"({found['patterns']:,} patterns from {len(templates)} error templates)\n"
    )
    rows = [
        [f"{count:,}", shorten(pattern), first[:19], last[:19]]
        for count, pattern, first, last in found["top"]
    ]
    table(["count", "pattern", "first", "last"], rows, {0})
    print(f"\nthe generator's {TOP_PATTERNS} most frequent error templates\n")
    rows = [
        [f"{count:,}", shorten(template)]
        for template, count in list(templates.items())[:TOP_PATTERNS]
    ]
    table(["count", "template"], rows, {0})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--megabytes",
        type=float,
        default=100,
        metavar="MB",
        help="uncompressed size of the log set, MB of 10^6 bytes (default 100)",
    )
    parser.add_argument(
        "--days", type=float, default=7, help="lines spread over the last N days (default 7)"
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=DEFAULT_WORKDIR,
        help=f"where the log sets are generated and cached (default {DEFAULT_WORKDIR})",
    )
    parser.add_argument(
        "--rebuild", action="store_true", help="generate the log set even if a cached one fits"
    )
    parser.add_argument(
        "--repeat", type=int, default=3, metavar="N", help="timed runs of each (default 3)"
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help=f"cProfile the Scanner loop without a window once, top {PROFILE_LINES} by tottime",
    )
    args = parser.parse_args(argv)
    if args.megabytes <= 0:
        parser.error("--megabytes must be positive")
    if args.days < 1:
        parser.error("--days must be at least 1 (the 24 h window must hold a fraction)")
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")

    workdir = args.workdir.absolute()
    workdir.mkdir(parents=True, exist_ok=True)
    print(machine(workdir))
    opslib = snapshot(workdir)
    print(f"opslib: source sha1 {opslib.source} ({opslib.commit}), copied to {opslib.copy}")
    logs = log_set(workdir, args.megabytes, args.days, args.rebuild)
    child = workdir / "triage_child.py"
    child.write_text(CHILD_SCRIPT, encoding="utf-8")
    since = utc_now() - WINDOW
    files = logs.files
    expected = check_counts(files, since)
    report_set(logs, since, expected["window_errors"])

    methods = [
        Method(
            "1.  zcat -f | grep -c ERROR",
            shell("zcat -f FILES | grep -c ERROR", files),
            SHELL_ENV,
        ),
        Method(
            "2.  pattern pipeline: zcat -f | grep ERROR | awk | sort | uniq -c | sort -rn | head -20",
            shell(
                'zcat -f FILES | grep ERROR | awk \'{$1=""; $2=""; print}\' | sort | uniq -c '
                "| sort -rn | head -20",
                files,
            ),
            SHELL_ENV,
        ),
        opslib_method("3a. opslib Scanner loop, no window", child, files, opslib, "scanner", None),
        opslib_method(
            "3b. opslib Scanner loop, 24 h window", child, files, opslib, "scanner", since
        ),
    ]
    if opslib.has_scan:
        methods += [
            opslib_method(
                "4a. opslib logscan.scan(), no window", child, files, opslib, "scan", None
            ),
            opslib_method(
                "4b. opslib logscan.scan(), 24 h window", child, files, opslib, "scan", since
            ),
        ]
    load = Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() else []
    measure(methods, args.repeat)
    if load:
        print(f"\nload average before the timed runs: {' '.join(load)}")

    for method in methods[2:]:
        module = method.summary()["module"]
        if not module.startswith(str(opslib.copy)):
            raise SystemExit(f"benchmark failed: the child imported {module}, not the copy")
    if (now := opslib.changed_since()) is not None:
        print(
            f"note: opslib's checkout changed during the runs (now sha1 {now}); the figures "
            f"are those of the copy, {opslib.source}"
        )

    report_timings(methods, logs, args.repeat)
    ratio_ok = report_ratio(methods)
    results = {
        "measured_at": stamp(utc_now()),
        "opslib_source": opslib.source,
        "opslib_commit": opslib.commit,
        "uncompressed": logs.uncompressed,
        "on_disk": logs.on_disk,
        "ratio": methods[1].median_s / methods[2].median_s,  # the Scanner loop, one process
        "judged_ratio": methods[1].median_s / _judged(methods).median_s,
        "rss_kib": methods[2].summary()["maxrss_kib"],
        "window_rss_kib": methods[3].summary()["maxrss_kib"],
    }
    if opslib.has_scan:
        results["scan_rss_kib"] = methods[4].summary()["maxrss_kib"]
        worker = max(method.summary()["worker_maxrss_kib"] for method in methods[4:])
        if worker:  # 0: scan() read the files in its own process
            results["scan_worker_rss_kib"] = worker
    stored = remember(workdir, logs, results)
    report_rss(stored, f"{args.megabytes:g}", opslib.source)
    honest = report_honesty(logs, methods, since, expected)
    report_patterns(logs, methods[2])
    if args.profile:
        print(f"\n### cProfile of {methods[2].label[4:]}, top {PROFILE_LINES} by tottime\n")
        print(profile(methods[2]).rstrip())
    elif not ratio_ok:
        print("\n(the ratio target was missed: --profile adds a cProfile of the Scanner loop)")
    if not honest:
        print("\nbenchmark failed: opslib's counts are not consistent with the input (see above)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
