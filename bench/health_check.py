"""Is the five-minute health check close to the cost of running any notebook at all?

`health-check` runs every five minutes from cron, so what it costs beyond the kernel is
paid 288 times a day. The floor is `runner_overhead.py`'s (b): one fresh Python that
imports papermill, executes a notebook holding only a `parameters` cell on the opslib
kernel and renders it with nbconvert. This benchmark times that floor and
`opslib run health-check --profile ideas` as fresh processes, the same number of times,
interleaved, and compares the medians. Target: the health check within 1.0 s of the floor.

The ideas pipeline comes from `opslib demo ideas` in a PostgreSQL started for the run
(PostgreSQL 15's binaries from `pg_config --bindir`, run as the `postgres` user when root),
with pg_stat_statements loaded as the manual's server has it; reports and data go to a
temp dir. The first health check (its log step learns the existing errors) is the warm-up.

    .venv/bin/python bench/health_check.py [--repeat N]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from runner_overhead import (
    BIN,
    Timing,
    bench_env,
    in_process_floor,
    machine,
    run,
    write_parameters_notebook,
)
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from postgres_server import PostgresServer  # the tests' throwaway server

TARGET_ABOVE_FLOOR_S = 1.0
RUN_OK_EXITS = {0, 1, 2}  # the demo is CRITICAL by design (stuck ideas)


def health_check(env: dict[str, str], workdir: Path) -> None:
    command = [str(BIN / "opslib"), "run", "health-check", "--profile", "ideas"]
    run(command, env, workdir, ok=RUN_OK_EXITS)


def interleaved(actions: dict[str, Callable[[], None]], repeat: int) -> dict[str, Timing]:
    """One warm-up of each, then `repeat` rounds running each once, in turn."""
    runs: dict[str, list[float]] = {label: [] for label in actions}
    for index in tqdm(range(repeat + 1), desc="rounds", unit="round", leave=False):
        for label, action in actions.items():
            started = time.perf_counter()
            action()
            if index:
                runs[label].append(time.perf_counter() - started)
    return {label: Timing(timings) for label, timings in runs.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, metavar="N", help="timed rounds")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    print(machine())
    print(f"1 warm-up round, then the median of {args.repeat}, interleaved")
    server = PostgresServer.create(shared_preload_libraries="pg_stat_statements")
    try:
        server.fresh_database("ideas")
        with tempfile.TemporaryDirectory(prefix="opslib-bench-") as temp:
            workdir = Path(temp)
            env = {**bench_env(workdir), "IDEAS_DSN": server.url("ideas")}
            env.pop("IDEAS_WEBHOOK_URL", None)
            run([str(BIN / "opslib"), "demo", "ideas"], env, workdir)
            notebook = write_parameters_notebook(workdir / "parameters-only.ipynb")
            timings = interleaved(
                {
                    "(b) floor: papermill + HTMLExporter, parameters-only nb": lambda: (
                        in_process_floor(notebook, env, workdir)
                    ),
                    "opslib run health-check --profile ideas": lambda: health_check(env, workdir),
                },
                args.repeat,
            )
    finally:
        server.destroy()
    for label, timing in timings.items():
        print(f"{label:<58} {timing.shown()}")
    floor, check = timings.values()
    above = check.median - floor.median
    verdict = "PASS" if above <= TARGET_ABOVE_FLOOR_S else "MISS"
    print(f"health-check - floor = {above:+.2f} s  (target <= {TARGET_ABOVE_FLOOR_S} s)  {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
