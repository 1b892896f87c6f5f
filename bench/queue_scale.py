"""Do the queue probes stay fast as `video_queue` grows from thousands to millions of rows?

A runbook's probes run on every schedule against the production queue, under the
profile's statement_timeout (10 s for `video`). A probe whose query reads the whole table
gets slower as history piles up, until one morning the check reports UNKNOWN ("did not
finish within its timeout") instead of the state of the queue. This benchmark measures
that curve on a real PostgreSQL:

1. one throwaway server (tests/postgres_server.py), the video schema of
   `opslib.demo.video` and the `video` profile pointed at it;
2. `video_queue` filled with generate_series in SQL and grown in place to each size
   (default 10k, 1M, 10M rows): a live queue of a fixed size (queued, processing, a few
   stuck > stuck_after) plus a finished history, 96% completed and 4% failed, spread
   over the last `--days` days (or, with `--per-day N`, N jobs a day going back in
   time), costs 0.05..3.50 USD, channels from a small set; then VACUUM ANALYZE;
3. each queue probe timed through the profile at each size: one warm-up, then the
   median of `--repeat` runs. Target: largest/smallest <= 2x with the recommended
   indexes (status, started_at) and (completed_at);
4. at the largest size the two indexes are dropped and the probes run again: each
   either returns (and how much slower) or fails with its timeout. The target there is
   a missing-index finding instead of a timeout, so the catalogue's index checks (if
   any) are run too and the gap is printed.

Loading is timed; if the next size would not fit `--load-budget` seconds of loading on
this machine, the largest size that does is used instead and the output says so.
`--explain` prints EXPLAIN ANALYZE of the statement each probe sends, at the largest
size, with and without the indexes.

    .venv/bin/python bench/queue_scale.py [--sizes 10000,1000000,10000000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from machine import describe
from sqlalchemy import event
from tqdm import tqdm

from opslib.checks.catalogue import catalogue
from opslib.clock import utc_now
from opslib.demo.video import SCHEMA
from opslib.probes import Metric, ProbeError, costs, queue
from opslib.profiles import Profile, load_profile

if TYPE_CHECKING:
    from postgres_server import PostgresServer

ROOT = Path(__file__).resolve().parent.parent
DATABASE = "video_scale"
TABLE = "video_queue"
TARGET_RATIO = 2.0
DEFAULT_SIZES = "10000,1000000,10000000"
CHUNK_ROWS = 250_000
CHANNELS = ("tech-reviews", "gaming", "cooking", "travel", "music")
FAILED_SHARE = 0.04
ERRORS = ("CUDA out of memory", "ffmpeg exited with status 1", "upload rejected")
QUEUED, PROCESSING, STUCK = 40, 8, 3  # the live queue, the same at every size
LIVE = QUEUED + PROCESSING + STUCK
RECOMMENDED_INDEXES = ("video_queue_status_started", "video_queue_completed")
TIMEOUT_MARK = "did not finish within its timeout"
# Raised modestly for a 24 GB machine; autovacuum off so it cannot run during a timing
# (the benchmark runs VACUUM ANALYZE itself after every load, as autovacuum would).
SERVER_SETTINGS = {
    "shared_buffers": "2GB",
    "effective_cache_size": "8GB",
    "maintenance_work_mem": "512MB",
    "max_wal_size": "8GB",
    "autovacuum": "off",
}
PROBES: dict[str, Callable[[Profile], Metric]] = {
    "queue.depth": queue.depth,
    "queue.stuck_jobs": queue.stuck_jobs,
    "queue.failure_rate 24h": partial(queue.failure_rate, window_hours=24),
    "queue.throughput 24h": partial(queue.throughput, window_hours=24),
    "costs.max_item_cost 24h": partial(costs.max_item_cost, window_hours=24),
}

HISTORY_SQL = """
INSERT INTO video_queue (id, channel, status, priority, created_at, started_at,
                         completed_at, cost_usd, error, gpu_id, output_path)
SELECT g,
       {channels}[1 + floor(r_channel * {n_channels})::int],
       CASE WHEN r_status < {failed} THEN 'failed' ELSE 'completed' END,
       0,
       finished - run - wait,
       finished - run,
       finished,
       round((0.05 + r_cost * 3.45)::numeric, 2),
       CASE WHEN r_status < {failed}
            THEN {errors}[1 + floor(r_status / {failed} * {n_errors})::int] END,
       g % 4,
       CASE WHEN r_status >= {failed} THEN '/renders/' || g || '.mp4' END
FROM (
    SELECT g, random() AS r_channel, random() AS r_status, random() AS r_cost,
           {finished} AS finished,
           interval '30 seconds' + random() * interval '20 minutes' AS run,
           random() * interval '30 minutes' AS wait
    FROM generate_series(CAST(:first AS bigint), CAST(:last AS bigint)) AS g
) AS history
"""

LIVE_SQL = """
INSERT INTO video_queue (id, channel, status, priority, created_at, started_at, gpu_id)
VALUES (:id, :channel, :status, 0, :created_at, :started_at, :gpu_id)
ON CONFLICT (id) DO UPDATE SET created_at = excluded.created_at,
                               started_at = excluded.started_at
"""


def _sql_array(values: tuple[str, ...]) -> str:
    return "(ARRAY[" + ", ".join(f"'{value}'" for value in values) + "])"


def history_sql(days: float, per_day: int | None) -> str:
    """The INSERT of one chunk of finished jobs, ids :first..:last, ending at :now.

    Spread: every chunk covers the same last `days` days, so a 24 h window holds a fixed
    share of the table. Constant rate: id n finished about (n - LIVE) / per_day days ago,
    so a 24 h window holds `per_day` jobs whatever the size."""
    if per_day:
        finished = f"CAST(:now AS timestamp) - (g - {LIVE} + random()) * interval '{86400 / per_day} seconds'"
    else:
        finished = f"CAST(:now AS timestamp) - random() * interval '{days} days'"
    return HISTORY_SQL.format(
        channels=_sql_array(CHANNELS),
        n_channels=len(CHANNELS),
        failed=FAILED_SHARE,
        errors=_sql_array(ERRORS),
        n_errors=len(ERRORS),
        finished=finished,
    )


def live_rows(now: datetime) -> list[dict[str, Any]]:
    """Ids 1..LIVE: queued jobs, jobs processing for under 5 min, and STUCK jobs processing
    for 25 min or more (stuck_after is 10 min), all relative to `now`."""
    rows = []
    for job_id in range(1, LIVE + 1):
        if job_id <= QUEUED:
            status, started = "queued", None
            created = now - timedelta(seconds=20 * job_id)
        elif job_id <= QUEUED + PROCESSING:
            status, started = "processing", now - timedelta(seconds=30 * (job_id - QUEUED))
            created = started - timedelta(minutes=1)
        else:
            status = "processing"
            started = now - timedelta(minutes=15 + 10 * (job_id - QUEUED - PROCESSING))
            created = started - timedelta(minutes=2)
        rows.append(
            {
                "id": job_id,
                "channel": CHANNELS[job_id % len(CHANNELS)],
                "status": status,
                "created_at": created,
                "started_at": started,
                "gpu_id": None if started is None else job_id % 4,
            }
        )
    return rows


@dataclass
class Load:
    """One growth step: rows added, seconds inserting and seconds in VACUUM ANALYZE."""

    size: int
    added: int
    insert_s: float
    vacuum_s: float
    total_bytes: int

    @property
    def seconds(self) -> float:
        return self.insert_s + self.vacuum_s


@dataclass
class Measured:
    """One probe at one size: the timed runs (warm-up excluded), its value, or its error."""

    runs: list[float] = field(default_factory=list)
    value: float | None = None
    error: str | None = None
    error_after_s: float = 0.0

    @property
    def median_ms(self) -> float:
        return 1000 * statistics.median(self.runs)

    @property
    def timed_out(self) -> bool:
        return self.error is not None and TIMEOUT_MARK in self.error

    def shown(self) -> str:
        if self.error is not None:
            return "TIMEOUT" if self.timed_out else "ERROR"
        return f"{self.median_ms:,.1f}"


def machine(engine: sa.Engine) -> str:
    """The machine and the PostgreSQL version, for reading numbers elsewhere."""
    with engine.connect() as connection:
        version = connection.exec_driver_sql("SELECT version()").scalar_one()
    return f"{describe()}\ndatabase: {version.split(',')[0]}"


def start_server() -> PostgresServer:
    sys.path.insert(0, str(ROOT / "tests"))
    from postgres_server import PostgresServer

    return PostgresServer.create(**SERVER_SETTINGS)


def create_database(server: PostgresServer) -> sa.Engine:
    """The benchmark's database with the video schema; returns a read-write engine."""
    admin = server.engine("postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f"CREATE DATABASE {DATABASE}")
    admin.dispose()
    engine = server.engine(DATABASE)
    with engine.begin() as connection:
        for statement in SCHEMA:
            connection.exec_driver_sql(statement)
    return engine


def refresh_live_queue(engine: sa.Engine) -> None:
    """Insert the live queue, or move it to now so that the stuck count does not drift
    while the history loads."""
    with engine.begin() as connection:
        connection.execute(sa.text(LIVE_SQL), live_rows(utc_now()))


def nice_floor(rows: float) -> int:
    """Round down to one significant digit: 7,340,000 -> 7,000,000."""
    if rows < 1:
        return 0
    magnitude = 10 ** math.floor(math.log10(rows))
    return int(rows // magnitude * magnitude)


def grow(engine: sa.Engine, insert: str, current: int, size: int, deadline: float) -> int:
    """Insert history ids current+1..size in chunks; stops early at `deadline`
    (time.monotonic) and returns the size reached."""
    statement = sa.text(insert)
    first = current + 1
    with (
        engine.connect() as connection,
        tqdm(total=size - current, desc=f"load to {size:,}", unit="row", unit_scale=True) as bar,
    ):
        connection.exec_driver_sql("SELECT setseed(%(seed)s)", {"seed": (current % 1000) / 1000})
        while first <= size and time.monotonic() < deadline:
            last = min(first + CHUNK_ROWS - 1, size)
            connection.execute(statement, {"first": first, "last": last, "now": utc_now()})
            connection.commit()
            bar.update(last - first + 1)
            first = last + 1
    return first - 1


def vacuum_analyze(engine: sa.Engine) -> int:
    """VACUUM ANALYZE the queue; returns its size with indexes in bytes."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.exec_driver_sql(f"VACUUM ANALYZE {TABLE}")
        return connection.exec_driver_sql(f"SELECT pg_total_relation_size('{TABLE}')").scalar_one()


def measure(profile: Profile, repeat: int, label: str) -> dict[str, Measured]:
    """Every probe: one warm-up, then `repeat` timed runs; a probe that fails is run no
    more and keeps its error (and how long it took to fail)."""
    results: dict[str, Measured] = {}
    with tqdm(total=len(PROBES) * (repeat + 1), desc=label, unit="run", leave=False) as bar:
        for name, probe in PROBES.items():
            measured = Measured()
            for index in range(repeat + 1):
                started = time.perf_counter()
                try:
                    metric = probe(profile)
                except ProbeError as exc:
                    measured.error = exc.reason
                    measured.error_after_s = time.perf_counter() - started
                    bar.update(repeat + 1 - index)
                    break
                if index:
                    measured.runs.append(time.perf_counter() - started)
                measured.value = metric.value
                bar.update()
            results[name] = measured
    return results


@contextmanager
def captured_statements() -> Iterator[list[tuple[str, Any]]]:
    """Every statement any engine sends while inside, with its parameters."""
    sent: list[tuple[str, Any]] = []

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        sent.append((statement, parameters))

    event.listen(sa.Engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        event.remove(sa.Engine, "before_cursor_execute", record)


def explain(engine: sa.Engine, profile: Profile, heading: str) -> None:
    """EXPLAIN ANALYZE of the statement each probe sends to the queue table."""
    print(f"\n{heading}")
    for name, probe in PROBES.items():
        with captured_statements() as sent, suppress(ProbeError):
            probe(profile)
        statement, parameters = next(
            (s, p) for s, p in reversed(sent) if TABLE in s and "pg_catalog" not in s
        )
        with engine.connect() as connection:
            connection.exec_driver_sql("SET statement_timeout = '120s'")
            plan = connection.exec_driver_sql(
                f"EXPLAIN (ANALYZE, COSTS OFF) {statement}", parameters
            ).scalars()
            print(f"-- {name}: {' '.join(statement.split())}")
            for line in plan:
                print(f"   {line}")


def index_findings(profile: Profile) -> list[str]:
    """What the catalogue's index checks (name contains "index") report, if it has any."""
    findings = []
    for name, spec in sorted(catalogue().items()):
        if "index" not in name or not all(profile.provides(need) for need in spec.profile_needs):
            continue
        try:
            metric = spec.probe_function()(profile)
            findings.append(f"{name}: value {metric.value} - {metric.summary}")
        except ProbeError as exc:
            findings.append(f"{name}: error - {exc.reason}")
    return findings


def print_loads(loads: list[Load]) -> None:
    print(f"\nload: generate_series, {CHUNK_ROWS:,} rows per INSERT, then VACUUM ANALYZE")
    print(
        f"{'size':>12} {'rows added':>12} {'insert s':>9} {'vacuum s':>9} "
        f"{'rows/s':>9} {'cumul. s':>9} {'table+idx':>10}"
    )
    cumulative = 0.0
    for load in loads:
        cumulative += load.seconds
        print(
            f"{load.size:>12,} {load.added:>12,} {load.insert_s:>9.1f} {load.vacuum_s:>9.1f} "
            f"{load.added / load.insert_s:>9,.0f} {cumulative:>9.1f} "
            f"{load.total_bytes / 2**20:>8,.0f} MB"
        )


def print_latencies(by_size: dict[int, dict[str, Measured]], repeat: int) -> None:
    sizes = list(by_size)
    smallest, largest = sizes[0], sizes[-1]
    width = max(len(name) for name in PROBES)
    print(f"\nlatency per probe with the recommended indexes, ms (median of {repeat})")
    header = "".join(f"{size:>14,}" for size in sizes)
    print(f"{'probe':<{width}}{header}  {'largest/smallest':>17}  target <= {TARGET_RATIO:g}x")
    for name in PROBES:
        cells = "".join(f"{by_size[size][name].shown():>14}" for size in sizes)
        first, last = by_size[smallest][name], by_size[largest][name]
        if first.error is None and last.error is None:
            ratio = last.median_ms / first.median_ms
            verdict = "PASS" if ratio <= TARGET_RATIO else "MISS"
            print(f"{name:<{width}}{cells}  {ratio:>16.1f}x  {verdict}")
        else:
            print(f"{name:<{width}}{cells}  {'-':>17}  MISS")
    print("\nvalue each probe returned")
    print(f"{'probe':<{width}}{header}")
    for name in PROBES:
        cells = "".join(f"{_value(by_size[size][name]):>14}" for size in sizes)
        print(f"{name:<{width}}{cells}")
    for size in sizes:
        for name, measured in by_size[size].items():
            if measured.error is not None:
                print(f"  {size:,} {name}: {measured.error}")


def _value(measured: Measured) -> str:
    if measured.error is not None or measured.value is None:
        return "-"
    return f"{measured.value:,.2f}".rstrip("0").rstrip(".")


def print_without_indexes(
    size: int, with_indexes: dict[str, Measured], without: dict[str, Measured], timeout_s: float
) -> None:
    width = max(len(name) for name in PROBES)
    print(f"\nat {size:,} rows without {' and '.join(RECOMMENDED_INDEXES)}")
    print(f"{'probe':<{width}}  {'with, ms':>10}  {'without, ms':>12}  {'slower':>7}  outcome")
    for name in PROBES:
        before, after = with_indexes[name], without[name]
        if after.error is None:
            slower = after.median_ms / before.median_ms if before.error is None else math.nan
            print(
                f"{name:<{width}}  {before.shown():>10}  {after.shown():>12}  "
                f"{slower:>6.1f}x  returned {_value(after)}"
            )
        else:
            print(
                f"{name:<{width}}  {before.shown():>10}  {after.shown():>12}  {'-':>7}  "
                f"failed after {after.error_after_s:.1f} s: {after.error}"
            )
    timed_out = [name for name, measured in without.items() if measured.timed_out]
    print(
        f"statement_timeout ({timeout_s:g} s) hit by: "
        + (", ".join(timed_out) if timed_out else "no probe")
    )


def parse_size(text: str) -> int:
    text = text.strip().lower().replace("_", "")
    scale = {"k": 1_000, "m": 1_000_000}.get(text[-1:], 1)
    return int(float(text.rstrip("km")) * scale)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes",
        default=DEFAULT_SIZES,
        help=f"comma-separated row counts, ascending; 10k and 1M work (default {DEFAULT_SIZES})",
    )
    parser.add_argument(
        "--repeat", type=int, default=5, metavar="N", help="timed runs after the warm-up"
    )
    parser.add_argument(
        "--load-budget",
        type=float,
        default=300,
        metavar="S",
        help="seconds of loading (insert + vacuum) the largest size must fit (default 300)",
    )
    parser.add_argument(
        "--days", type=float, default=30, help="history spread over the last N days (default 30)"
    )
    parser.add_argument(
        "--per-day",
        type=int,
        metavar="N",
        help="instead of --days: N finished jobs a day, the history going back in time",
    )
    parser.add_argument(
        "--explain", action="store_true", help="EXPLAIN ANALYZE each probe at the largest size"
    )
    args = parser.parse_args(argv)
    try:
        sizes = [parse_size(size) for size in args.sizes.split(",")]
    except ValueError:
        parser.error(f"--sizes: not a list of row counts: {args.sizes!r}")
    if sizes != sorted(set(sizes)) or sizes[0] <= LIVE:
        parser.error(f"--sizes must be ascending, distinct and larger than {LIVE}")
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")

    server = start_server()
    try:
        return run(server, sizes, args)
    finally:
        server.destroy()


def run(server: PostgresServer, sizes: list[int], args: argparse.Namespace) -> int:
    engine = create_database(server)
    os.environ["VIDEO_DSN"] = server.url(DATABASE)
    profile = load_profile("video")
    timeout_s = profile.targets.database.statement_timeout if profile.targets.database else 0
    print(machine(engine))
    print("server: " + ", ".join(f"{key}={value}" for key, value in SERVER_SETTINGS.items()))
    history = (
        f"{args.per_day:,} finished jobs a day going back in time"
        if args.per_day
        else f"finished jobs spread over the last {args.days:g} days"
    )
    print(
        f"data: {QUEUED} queued + {PROCESSING + STUCK} processing ({STUCK} stuck), then "
        f"{history}, {100 * (1 - FAILED_SHARE):g}% completed / {100 * FAILED_SHARE:g}% failed"
    )
    print(
        f"profile video: statement_timeout {timeout_s:g} s; each probe: 1 warm-up, "
        f"then the median of {args.repeat}; load budget {args.load_budget:g} s"
    )

    insert = history_sql(args.days, args.per_day)
    refresh_live_queue(engine)
    current, spent = LIVE, 0.0
    loads: list[Load] = []
    by_size: dict[int, dict[str, Measured]] = {}
    for wanted in sizes:
        size = wanted
        if loads:
            rate = loads[-1].added / loads[-1].seconds
            if spent + (size - current) / rate > args.load_budget:
                size = nice_floor(current + (args.load_budget - spent) * rate)
                tqdm.write(
                    f"note: {wanted:,} rows would need ~{spent + (wanted - current) / rate:.0f} s "
                    f"of loading at {rate:,.0f} rows/s (budget {args.load_budget:g} s); "
                    f"using {size:,} instead"
                )
                if size <= current:
                    break
        started = time.monotonic()
        reached = grow(engine, insert, current, size, started + args.load_budget - spent)
        insert_s = time.monotonic() - started
        if reached < size:
            tqdm.write(f"note: load budget reached at {reached:,} rows; using that size")
        started = time.monotonic()
        total_bytes = vacuum_analyze(engine)
        loads.append(
            Load(reached, reached - current, insert_s, time.monotonic() - started, total_bytes)
        )
        spent += loads[-1].seconds
        current = reached
        refresh_live_queue(engine)
        by_size[current] = measure(profile, args.repeat, f"probes at {current:,}")
        if reached < size:
            break

    print_loads(loads)
    if current != sizes[-1]:
        print(f"note: largest size measured is {current:,} rows, not {sizes[-1]:,}")
    print_latencies(by_size, args.repeat)
    if args.explain:
        explain(engine, profile, f"EXPLAIN ANALYZE at {current:,} rows, with the indexes")

    findings_with = index_findings(profile)
    with engine.begin() as connection:
        for index in RECOMMENDED_INDEXES:
            connection.exec_driver_sql(f"DROP INDEX {index}")
    refresh_live_queue(engine)
    without = measure(profile, args.repeat, f"probes at {current:,}, no indexes")
    print_without_indexes(current, by_size[current], without, timeout_s)
    findings_without = index_findings(profile)
    if findings_without:
        print("missing-index finding, from the catalogue's index checks:")
        for before, after in zip(findings_with, findings_without, strict=True):
            print(f"  with the indexes:    {before}\n  without the indexes: {after}")
    else:
        print(
            "missing-index finding: none - the catalogue has no check that looks for the "
            "queue's indexes, so without them the probes only get slower (or time out)"
        )
    if args.explain:
        explain(engine, profile, f"EXPLAIN ANALYZE at {current:,} rows, without the indexes")
    engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
