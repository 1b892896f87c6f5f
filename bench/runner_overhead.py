"""How much does `opslib run` cost on top of the tools it is built on?

A scheduled runbook pays for a Python start, its imports, a kernel start, the notebook's
cells, the HTML render and the archive. This benchmark separates opslib's own overhead
from that floor with three wall times of the same shape of work, all as fresh processes:

(a) the tools chained by hand: the `papermill` CLI runs a notebook holding only a
    `parameters` cell on the `opslib` kernel, then `jupyter nbconvert --to html --no-input`
    renders its output;
(b) the in-process floor: one Python process imports papermill, executes that notebook
    and renders it with nbconvert's HTMLExporter — (a) without the second interpreter;
(c) `opslib run morning-check --profile demo`, against a demo pipeline and a report
    archive in a temp dir, so the user's data and archive are untouched.

(c)/(a) ≤ 1.0 says opslib is no slower than doing it by hand; (c)/(b) ≤ 1.6 bounds what
the runbook's cells, scrapbook, the report template and the archive add to the floor.

(d) times the morning check's checks evaluated in one process without a kernel (imports
timed separately), to tell the cost of the checks themselves from the cost of the kernel.

Each measurement is one warm-up run, then the median of N runs (`--repeat N`).

    .venv/bin/python bench/runner_overhead.py [--repeat N]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
from machine import describe
from tqdm import tqdm

KERNEL = "opslib"
RUNBOOK = "morning-check"
PROFILE = "demo"
CHECKS = [
    "database_reachable",
    "database_integrity",
    "queue_depth",
    "stuck_jobs",
    "failure_rate",
    "log_error_rate",
    "disk_free",
    "throughput",
]
RUN_OK_EXITS = {0, 1, 2}  # OK, WARNING, CRITICAL: the demo is a WARNING by design
TARGET_VS_CHAINED = 1.0
TARGET_VS_FLOOR = 1.6
TARGET_EVALUATE_S = 0.3

BIN = Path(sys.executable).parent

FLOOR_SCRIPT = textwrap.dedent(
    """
    import sys

    import nbconvert
    import papermill

    source, executed, html = sys.argv[1:4]
    nb = papermill.execute_notebook(source, executed, kernel_name="opslib", progress_bar=False)
    body, _ = nbconvert.HTMLExporter(exclude_input=True).from_notebook_node(nb)
    with open(html, "w", encoding="utf-8") as out:
        out.write(body)
    """
)

EVALUATE_SCRIPT = textwrap.dedent(
    """
    import json
    import sys
    import time

    started = time.perf_counter()
    from opslib.profiles import load_profile
    from opslib.runbook import Runbook
    imports_s = time.perf_counter() - started

    runbook, profile = sys.argv[1:3]
    checks, repeat = json.loads(sys.argv[3]), int(sys.argv[4])

    def evaluate_all():
        started = time.perf_counter()
        rb = Runbook(runbook, load_profile(profile))
        for name in checks:
            rb.evaluate(name)
        return time.perf_counter() - started, [r.status.name for r in rb.results]

    first_s, statuses = evaluate_all()
    runs = [evaluate_all()[0] for _ in range(repeat)]
    print(json.dumps({"imports_s": imports_s, "first_s": first_s, "runs": runs,
                      "statuses": statuses}))
    """
)


@dataclass
class Timing:
    """The runs of one measurement (warm-up excluded) and their median."""

    runs: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.runs)

    def shown(self, digits: int = 2) -> str:
        runs = ", ".join(f"{run:.{digits}f}" for run in self.runs)
        return f"{self.median:6.{digits}f} s  (runs: {runs})"


def machine() -> str:
    return describe()


def bench_env(workdir: Path) -> dict[str, str]:
    """The environment of every timed process: the venv first on PATH, opslib's demo data
    and report archive inside the temp dir."""
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["OPSLIB_DATA_DIR"] = str(workdir / "data")
    env["OPSLIB_REPORTS_DIR"] = str(workdir / "reports")
    return env


def write_parameters_notebook(path: Path) -> Path:
    """A notebook whose only cell is the `parameters` cell, on the opslib kernel."""
    nb = nbformat.v4.new_notebook()
    nb.cells.append(nbformat.v4.new_code_cell("x = 1", metadata={"tags": ["parameters"]}))
    nb.metadata["kernelspec"] = {"name": KERNEL, "display_name": KERNEL, "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    nbformat.write(nb, path)
    return path


def run(command: list[str], env: dict[str, str], cwd: Path, ok: set[int] | None = None) -> str:
    """Run one process to the end; its stdout, or an error with its stderr when the exit
    code is not one of `ok` (default: 0 only)."""
    done = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True)
    if done.returncode not in (ok or {0}):
        raise SystemExit(
            f"benchmark failed: {' '.join(command)} exited {done.returncode}\n{done.stderr}"
        )
    return done.stdout


def timed(label: str, action: Callable[[], object], repeat: int) -> Timing:
    """One warm-up run, then `repeat` timed runs, with a progress bar."""
    runs: list[float] = []
    for index in tqdm(range(repeat + 1), desc=label, unit="run", leave=False):
        started = time.perf_counter()
        action()
        if index:
            runs.append(time.perf_counter() - started)
    return Timing(runs)


def chained_tools(notebook: Path, env: dict[str, str], workdir: Path) -> None:
    """(a) `papermill … -k opslib`, then `jupyter nbconvert --to html --no-input`."""
    executed = workdir / "chained-out.ipynb"
    run([str(BIN / "papermill"), str(notebook), str(executed), "-k", KERNEL], env, workdir)
    run(
        [str(BIN / "jupyter"), "nbconvert", "--to", "html", "--no-input", str(executed)],
        env,
        workdir,
    )


def in_process_floor(notebook: Path, env: dict[str, str], workdir: Path) -> None:
    """(b) papermill and HTMLExporter in one fresh interpreter, imports included."""
    outputs = [str(workdir / "floor-out.ipynb"), str(workdir / "floor-out.html")]
    run([sys.executable, "-c", FLOOR_SCRIPT, str(notebook), *outputs], env, workdir)


def opslib_run(env: dict[str, str], workdir: Path) -> None:
    """(c) the real thing; WARNING (exit 1) is the demo's expected outcome."""
    command = [str(BIN / "opslib"), "run", RUNBOOK, "--profile", PROFILE]
    run(command, env, workdir, ok=RUN_OK_EXITS)


def evaluate_without_kernel(env: dict[str, str], workdir: Path, repeat: int) -> dict[str, Any]:
    """(d) every check of the morning check, in one process, no kernel; timed inside it."""
    arguments = [RUNBOOK, PROFILE, json.dumps(CHECKS), str(repeat)]
    command = [sys.executable, "-c", EVALUATE_SCRIPT, *arguments]
    return json.loads(run(command, env, workdir))


def verdict(value: float, target: float) -> str:
    return "PASS" if value <= target else "MISS"


def report(chained: Timing, floor: Timing, opslib: Timing, evaluated: dict[str, Any]) -> None:
    for label, timing in [
        ("(a) papermill CLI + jupyter nbconvert CLI, parameters-only nb", chained),
        ("(b) one python: papermill + HTMLExporter, parameters-only nb", floor),
        (f"(c) opslib run {RUNBOOK} --profile {PROFILE}", opslib),
    ]:
        print(f"{label:<62} {timing.shown()}")
    for name, ratio, target in [
        ("(c)/(a)", opslib.median / chained.median, TARGET_VS_CHAINED),
        ("(c)/(b)", opslib.median / floor.median, TARGET_VS_FLOOR),
    ]:
        print(f"{name} = {ratio:.2f}  (target <= {target:.1f})  {verdict(ratio, target)}")
    checks = Timing(evaluated["runs"])
    label = f"(d) the {len(CHECKS)} checks evaluated in one process, no kernel"
    print(f"{label:<62} {checks.shown(digits=3)}")
    print(
        f"    target <= {TARGET_EVALUATE_S} s  {verdict(checks.median, TARGET_EVALUATE_S)};"
        f" excluded: imports {evaluated['imports_s']:.2f} s,"
        f" first (cold) pass {evaluated['first_s']:.3f} s"
    )
    print(f"    statuses: {' '.join(evaluated['statuses'])}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--repeat", type=int, default=3, metavar="N", help="timed runs after the warm-up"
    )
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    print(machine())
    print(f"each: 1 warm-up run, then the median of {args.repeat}")
    with tempfile.TemporaryDirectory(prefix="opslib-bench-") as temp:
        workdir = Path(temp)
        env = bench_env(workdir)
        notebook = write_parameters_notebook(workdir / "parameters-only.ipynb")
        run([str(BIN / "opslib"), "demo"], env, workdir)
        chained = timed("(a) chained", lambda: chained_tools(notebook, env, workdir), args.repeat)
        floor = timed("(b) floor", lambda: in_process_floor(notebook, env, workdir), args.repeat)
        opslib = timed("(c) opslib run", lambda: opslib_run(env, workdir), args.repeat)
        evaluated = evaluate_without_kernel(env, workdir, args.repeat)
    report(chained, floor, opslib, evaluated)
    return 0


if __name__ == "__main__":
    sys.exit(main())
