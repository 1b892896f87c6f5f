"""The schedule: parameters/schedule.yaml validated, and written out for cron, Airflow and
Kubernetes exactly as a person would start each run."""

from __future__ import annotations

import ast
import re
import shlex
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from support import Workspace

from opslib.schedule.cron import cron_lines
from opslib.schedule.entries import ScheduleError, load_schedule
from opslib.schedule.export import cronjob

SHIPPED = {
    ("morning-check", "demo"): "0 7 * * *",
    ("health-check", "ideas"): "*/5 * * * *",
    ("monthly-maintenance", "ideas"): "0 3 * * 0",
    ("run-watch", "spots"): "*/10 * * * *",
    ("morning-check", "spots"): "0 7 * * *",
    ("hourly-monitor", "video"): "0 * * * *",
    ("evening-wrap", "video"): "0 22 * * *",
    ("morning-check", "catalog"): "15 7 * * *",
    ("weekly-review", "catalog"): "0 9 * * 1",
    ("monthly-maintenance", "catalog"): "0 3 1 * *",
    ("pre-processing-checklist", "mediaplan"): "30 5 * * *",
    ("post-processing-verification", "mediaplan"): "0 8 * * *",
    ("backup", "video"): "*/30 * * * *",
    ("cleanup", "video"): "30 22 * * *",
    ("cleanup", "mediaplan"): "0 4 1 * *",
    ("slow-processing", "mediaplan"): "15 9 * * 1",
    ("high-error-rate", "mediaplan"): "30 4 1 * *",
    ("daily-summary", "video"): "45 22 * * *",
    ("weekly-summary", "catalog"): "30 9 * * 1",
}
HEALTH_CHECK = '- {runbook: health-check, profile: ideas, cron: "*/5 * * * *", timeout: 4 min}\n'
MORNING_CHECK = '- {runbook: morning-check, profile: demo, cron: "0 7 * * *", timeout: 15 min}\n'


def schedule_file(workspace: Workspace, text: str) -> Path:
    path = workspace.root / "schedule.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def as_cron_runs_it(line: str) -> str:
    """The command cron hands to the shell: five fields off, `\\%` back to `%`. An unescaped
    `%` would have cut the command at that point."""
    command = line.split(" ", 5)[5]
    assert not re.search(r"(?<!\\)%", command), line
    return command.replace("\\%", "%")


def crontab_environment(lines: list[str]) -> dict[str, str]:
    """The `NAME="value"` lines of a crontab as cron reads them: matching quotes dropped."""
    assignments = [line.split("=", 1) for line in lines if re.match(r"^[A-Z_]+=", line)]
    return {name: value[1:-1] for name, value in assignments}


def run_as_cron(lines: list[str], stand_in: Path) -> None:
    """Run the crontab's one job line through sh with the environment cron gives it, the
    `opslib` program replaced by `stand_in`."""
    (job,) = [line for line in lines if "flock" in line]
    command = as_cron_runs_it(job)
    words = shlex.split(command)
    program = words[words.index("flock") + 7]
    command = command.replace(f" {shlex.quote(program)} ", f" {stand_in} ", 1)
    env = {"PATH": "/usr/bin:/bin", "HOME": "/x", **crontab_environment(lines)}
    subprocess.run(["sh", "-c", command], check=True, env=env)


def path_of_length(base: Path, length: int) -> Path:
    """A path `length` characters long below `base`, in folder names a file system takes."""
    path = base
    while length - len(str(path)) > 202:
        path /= "a" * 200
    return path / ("a" * (length - len(str(path)) - 1))


def print_args_program(folder: Path) -> Path:
    """A stand-in for opslib that prints the arguments it gets, one a line."""
    stand_in = folder / "print-args"
    stand_in.write_text('#!/bin/sh\nfor arg in "$@"; do printf "%s\\n" "$arg"; done\n')
    stand_in.chmod(0o755)
    return stand_in


def test_the_shipped_schedule_is_valid_and_complete() -> None:
    entries = load_schedule()
    assert {(e.job, e.profile): e.cron for e in entries} == SHIPPED
    by_pair = {(e.job, e.profile): e for e in entries}
    assert by_pair["health-check", "ideas"].timeout == 240
    # the ideas manual shuts down at 100 %: the scheduled check applies the halt itself
    assert by_pair["health-check", "ideas"].parameters == {"halt_on_emergency": True}
    assert by_pair["evening-wrap", "video"].parameters == {"apply": True}
    assert {e.by for e in entries} == {"cron"}


def test_a_summary_entry_is_a_cron_line_sending_the_period_summary(workspace: Workspace) -> None:
    """The manuals' daily and weekly messages go out even when nothing changed: cron sends
    them with `opslib notify summary`, under the same lock and log naming as a run."""
    entry = '- {summary: weekly, profile: catalog, cron: "30 9 * * 1", timeout: 2 min}\n'
    result = workspace.opslib("schedule", "--file", str(schedule_file(workspace, entry)), "cron")
    assert result.returncode == 0, result.stderr
    (line,) = [line for line in result.stdout.splitlines() if line.startswith("30 9 * * 1")]
    assert "opslib notify summary --profile catalog --period weekly >>" in line
    assert "cron--weekly-summary--catalog.lock" in line and " run " not in line


def test_show_lists_the_next_five_minute_runs_after_a_given_time(workspace: Workspace) -> None:
    path = schedule_file(workspace, HEALTH_CHECK)
    # an offset is converted: 11:02 in UTC+1 is 10:02 UTC
    result = workspace.opslib(
        "schedule", "show", "--file", str(path), "--at", "2026-11-23T11:02+01:00", "--count", "3"
    )
    assert result.returncode == 0, result.stderr
    row = next(line for line in result.stdout.splitlines() if line.startswith("health-check"))
    assert row.split()[1:7] == ["ideas", "*/5", "*", "*", "*", "*"]
    assert row.endswith("2026-11-23 10:05, 2026-11-23 10:10, 2026-11-23 10:15")
    assert "4 minutes" in row


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        (
            '{runbook: health-check, profile: ideas, cron: "*/61 * * * *", timeout: 4 min}',
            "cron: '*/61 * * * *': minute '*/61': the step must be 1 to 60",
        ),
        (
            '{runbook: health-check, profile: ideas, cron: "0 7 * * 7", timeout: 4 min}',
            "cron: '0 7 * * 7': day-of-week 7 is above 6 (Sunday is 0 or SUN",
        ),
        (
            '{runbook: health-check, profile: ideas, cron: "0 0 31 2 *", timeout: 4 min}',
            "cron: '0 0 31 2 *' never runs: February has no day 31",
        ),
        (
            '{runbook: health-chek, profile: ideas, cron: "*/5 * * * *", timeout: 4 min}',
            "runbook: no runbook named 'health-chek' under notebooks/ (did you mean health-check?)",
        ),
        (
            '{runbook: health-check, profile: ideas, cron: "*/5 * * * *", timeout: 4 min, '
            "parameters: {colour: red}}",
            "parameters.colour: unknown parameter 'colour' for health-check",
        ),
        (
            '{runbook: health-check, profile: idea, cron: "*/5 * * * *", timeout: 4 min}',
            "profile: no profile named 'idea'",
        ),
        (
            '{runbook: gpu-memory, profile: demo, cron: "*/5 * * * *", timeout: 4 min}',
            "gpu-memory does not apply to profile demo: its steps need gpu",
        ),
        (
            '{runbook: health-check, profile: ideas, cron: "*/5 * * * *", timeout: 1 GB}',
            "timeout: '1 GB' is not a positive duration",
        ),
        (
            '{runbook: health-check, profile: ideas, cron: "*/5 * * * *", timout: 4 min}',
            "unknown key 'timout'",
        ),
        (
            '{summary: daily, runbook: health-check, profile: ideas, cron: "0 7 * * *", '
            "timeout: 2 min}",
            "an entry runs a runbook or sends a summary: set exactly one",
        ),
        (
            '{summary: daily, profile: demo, cron: "0 7 * * *", timeout: 2 min}',
            "profile demo has no notify channels",
        ),
    ],
)
def test_a_bad_entry_is_one_line_naming_the_file_and_the_entry(
    workspace: Workspace, entry: str, expected: str
) -> None:
    path = schedule_file(workspace, MORNING_CHECK + f"- {entry}\n")
    result = workspace.opslib("schedule", "--file", str(path), "cron")
    assert result.returncode == 3
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith(f"opslib: {path}: entry 2 (line 2): ")
    assert expected in result.stderr


@pytest.mark.parametrize(
    ("cron", "problem"),
    [
        ("0 7 * * 7", "day-of-week 7 is above 6 (Sunday is 0 or SUN; Kubernetes refuses 7)"),
        ("0 7 * * 1-7", "day-of-week 7 is above 6"),
        ("0 7 * 13 *", "month 13 is above 12"),
        ("0 24 * * *", "hour 24 is above 23"),
        ("0 7 0 * *", "day-of-month 0 is below 1"),
        ("5/15 * * * *", "minute '5/15': a step needs * or a range before it (5-59/15)"),
        ("0 7 * * MON-SUN", "day-of-week 'MON-SUN' runs backwards"),
        ("0 7 ? * *", "day-of-month '?' is not a value, a range or a step"),
        ("0 7 L * *", "day-of-month 'L' is not a number"),
        ("0 7 * * 1#2", "day-of-week '1#2' is not a value, a range or a step"),
        ("0 7 * * MONDAY", "day-of-week 'MONDAY' is not a number or a name SUN-SAT"),
        ("0 7 * JAN,,MAR *", "month 'JAN,,MAR' has an empty list item"),
        ("*/0 * * * *", "minute '*/0': the step must be 1 to 60"),
        ("0 0 */2 * MON", "cron and Kubernetes combine day-of-month '*/2' and day-of-week"),
        ("@daily", "is not a five-field cron expression"),
        ("0 7 * * * *", "is not a five-field cron expression"),
    ],
)
def test_a_cron_expression_kubernetes_or_debian_cron_would_refuse_names_the_field(
    workspace: Workspace, cron: str, problem: str
) -> None:
    path = schedule_file(workspace, HEALTH_CHECK.replace("*/5 * * * *", cron))
    with pytest.raises(ScheduleError) as refused:
        load_schedule(path)
    assert str(refused.value).startswith(f"{path}: entry 1 (line 1): cron: {cron!r}")
    assert problem in str(refused.value)


@pytest.mark.parametrize(
    ("cron", "problem"),
    [
        ("0 0 31 2 *", "February has no day 31"),
        ("0 0 30,31 2 *", "February has no day 30 or 31"),
        ("0 0 31 4,6,9,11 *", "April, June, September and November have no day 31"),
    ],
)
def test_show_refuses_a_schedule_that_never_runs_in_one_line(
    workspace: Workspace, cron: str, problem: str
) -> None:
    path = schedule_file(workspace, HEALTH_CHECK.replace("*/5 * * * *", cron))
    result = workspace.opslib("schedule", "--file", str(path), "show")
    assert result.returncode == 3
    assert result.stdout == "" and "Traceback" not in result.stderr
    assert (
        result.stderr == f"opslib: {path}: entry 1 (line 1): cron: {cron!r} never runs: {problem}\n"
    )


@pytest.mark.parametrize(
    ("cron", "runs"),
    [
        ("0 9 * * SUN", "2026-11-29 09:00, 2026-12-06 09:00, 2026-12-13 09:00"),
        ("30 6 * * mon-fri", "2026-11-24 06:30, 2026-11-25 06:30, 2026-11-26 06:30"),
        ("0 0 29 2 *", "2028-02-29 00:00, 2032-02-29 00:00, 2036-02-29 00:00"),
        # both day fields restricted: either matches, so the Mondays of February run too
        ("0 12 31 2 MON", "2027-02-01 12:00, 2027-02-08 12:00, 2027-02-15 12:00"),
        # */1 is *, for cron and Kubernetes alike: Mondays only
        ("0 0 */1 * MON", "2026-11-30 00:00, 2026-12-07 00:00, 2026-12-14 00:00"),
        ("*/20 0-1,23 1-31/2 JAN-DEC/3 *", "2027-01-01 00:00, 2027-01-01 00:20, 2027-01-01 00:40"),
    ],
)
def test_show_lists_the_runs_cron_and_kubernetes_would_start(
    workspace: Workspace, cron: str, runs: str
) -> None:
    path = schedule_file(workspace, HEALTH_CHECK.replace("*/5 * * * *", cron))
    result = workspace.opslib("schedule", "--file", str(path), "show", "--at", "2026-11-23T10:02")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[1].endswith(runs)


def test_install_twice_keeps_one_block_and_the_foreign_lines(workspace: Workspace) -> None:
    foreign = 'MAILTO="ops@example.com"\n0  2 * * *   /usr/local/bin/backup --all   # nightly\n'
    tabfile = workspace.root / "crontab"
    tabfile.write_text(foreign, encoding="utf-8")
    both = schedule_file(workspace, HEALTH_CHECK + MORNING_CHECK)
    first = workspace.opslib("schedule", "--file", str(both), "install", "--tabfile", str(tabfile))
    assert first.returncode == 0, first.stderr
    assert "installed 2 schedule line(s)" in first.stdout
    only_one = schedule_file(workspace, HEALTH_CHECK)
    second = workspace.opslib(
        "schedule", "install", "--file", str(only_one), "--tabfile", str(tabfile)
    )
    assert second.returncode == 0, second.stderr

    text = tabfile.read_text(encoding="utf-8")
    assert text.startswith(foreign)  # byte for byte, spacing and quotes included
    home = workspace.home
    assert text.count(f"# BEGIN opslib {home}\n") == 1
    assert text.count(f"# END opslib {home}\n") == 1
    assert text.endswith(f"# END opslib {home}\n")
    jobs = [line for line in text.splitlines() if "opslib run" in line]
    assert len(jobs) == 1 and " health-check " in jobs[0]


def test_install_dry_run_prints_the_crontab_and_writes_nothing(workspace: Workspace) -> None:
    tabfile = workspace.root / "crontab"
    tabfile.write_text("0 1 * * * /bin/true\n", encoding="utf-8")
    path = schedule_file(workspace, HEALTH_CHECK)
    result = workspace.opslib(
        "schedule", "--file", str(path), "install", "--tabfile", str(tabfile), "--dry-run"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("0 1 * * * /bin/true\n# BEGIN opslib ")
    assert "opslib run health-check --profile ideas" in result.stdout
    assert tabfile.read_text(encoding="utf-8") == "0 1 * * * /bin/true\n"


def test_a_cron_line_runs_from_the_project_under_flock_and_keeps_its_output(
    workspace: Workspace,
) -> None:
    path = schedule_file(workspace, HEALTH_CHECK)
    result = workspace.opslib("schedule", "--file", str(path), "cron")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    # the archive the installer uses is the one the cron run writes to
    assert crontab_environment(lines) == {
        "OPSLIB_HOME": str(workspace.home),
        "OPSLIB_REPORTS_DIR": str(workspace.reports),
        "OPSLIB_DATA_DIR": str(workspace.data),
        # written though unset here, so this block's settings never reach a later one's
        "OPSLIB_PROMETHEUS_DIR": "",
        "OPSLIB_GROUP_ACCESS": "",
    }
    line = lines[-1]
    words = shlex.split(as_cron_runs_it(line))
    # cron's umask 022 would leave the lock and log folders readable by everyone
    assert line.startswith("*/5 * * * * umask 077 && cd ")
    words = words[3:]
    assert words[:3] == ["cd", "$OPSLIB_HOME", "&&"]
    lock = "$OPSLIB_REPORTS_DIR/.locks/cron--health-check--ideas.lock"
    log = "$OPSLIB_REPORTS_DIR/cron/health-check--ideas.log"
    assert words[3:8] == [
        "mkdir",
        "-p",
        "$OPSLIB_REPORTS_DIR/.locks",
        "$OPSLIB_REPORTS_DIR/cron",
        "&&",
    ]
    flock = words.index("flock")
    assert words[flock : flock + 3] == ["flock", "-n", lock]
    # an outer bound a minute past opslib's own timeout, so a hang never holds the lock
    assert words[flock + 3 : flock + 7] == ["timeout", "-k", "30", "300"]
    assert words[flock + 8 :] == [
        "run", "health-check", "--profile", "ideas", "--timeout", "240", "--by", "cron",
        ">>", log, "2>&1",
    ]  # fmt: skip


def test_a_parameter_value_with_spaces_quotes_and_percent_reaches_opslib_as_written(
    workspace: Workspace, tmp_path: Path
) -> None:
    value = """it's "the" 50% ${HOME} $(id) config"""
    entry = {
        "runbook": "monthly-maintenance",
        "profile": "catalog",
        "cron": "0 3 1 * *",
        "timeout": "30 min",
        "parameters": {"config": value},
    }
    path = schedule_file(workspace, yaml.safe_dump([entry]))
    (entry,) = load_schedule(path)
    assert entry.parameters == {"config": value}
    # run the very lines through a shell, with a stand-in that prints what opslib would get
    run_as_cron(cron_lines([entry]), print_args_program(tmp_path))
    logged = (workspace.reports / "cron" / "monthly-maintenance--catalog.log").read_text()
    assert logged.splitlines()[-2:] == ["-p", f"config={value}"]


def test_cron_lines_stay_under_debians_limit_with_a_900_character_reports_path(
    workspace: Workspace, tmp_path: Path
) -> None:
    reports = path_of_length(tmp_path, 900)
    workspace.env["OPSLIB_REPORTS_DIR"] = str(reports)
    path = schedule_file(workspace, HEALTH_CHECK)
    result = workspace.opslib("schedule", "--file", str(path), "cron")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert max(len(line.encode()) for line in lines) < 999  # Debian crontab's limit
    assert lines.count(f'OPSLIB_REPORTS_DIR="{reports}"') == 1
    assert sum(str(reports) in line for line in lines) == 1
    # the job still writes its log under the long path
    run_as_cron(lines, print_args_program(tmp_path))
    logged = (reports / "cron" / "health-check--ideas.log").read_text()
    assert logged.splitlines()[:2] == ["run", "health-check"]


def test_a_crontab_line_that_would_still_be_too_long_is_refused_in_one_line(
    workspace: Workspace,
) -> None:
    workspace.env["OPSLIB_REPORTS_DIR"] = str(path_of_length(workspace.root, 991))
    path = schedule_file(workspace, HEALTH_CHECK)
    result = workspace.opslib("schedule", "--file", str(path), "cron")
    assert result.returncode == 3
    assert result.stdout == "" and result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("opslib: OPSLIB_REPORTS_DIR: its crontab line would be 1012")

    del workspace.env["OPSLIB_REPORTS_DIR"]
    long_value = "x" * 950
    path = schedule_file(
        workspace,
        "- {runbook: monthly-maintenance, profile: catalog, cron: '0 3 1 * *', timeout: 30 min,"
        f" parameters: {{config: {long_value}}}}}\n",
    )
    tabfile = workspace.root / "crontab"
    result = workspace.opslib(
        "schedule", "--file", str(path), "install", "--tabfile", str(tabfile), "--dry-run"
    )
    assert result.returncode == 3
    assert result.stdout == "" and result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith(
        "opslib: monthly-maintenance on catalog: its crontab line would be "
    )
    assert "Debian's cron takes at most 998" in result.stderr


def test_the_airflow_file_has_one_dag_per_entry_with_its_schedule(workspace: Workspace) -> None:
    workspace.env["IDEAS_DSN"] = "postgresql://studio:s3cret@db:5432/ideas"
    folder = workspace.root / "dags"
    result = workspace.opslib("schedule", "export", "--airflow", str(folder))
    assert result.returncode == 0, result.stderr
    source = (folder / "opslib_runbooks.py").read_text(encoding="utf-8")
    assert "s3cret" not in source and "IDEAS_DSN" not in source
    # Airflow reads the DAG folder as its own user, whatever opslib's owner-only umask
    assert stat.S_IMODE((folder / "opslib_runbooks.py").stat().st_mode) == 0o644

    dags, tasks = {}, {}
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            keywords = {k.arg: k.value for k in node.keywords}
            if node.func.id == "DAG":
                dags[ast.literal_eval(keywords["dag_id"])] = keywords
            if node.func.id == "BashOperator":
                tasks[keywords["dag"].id] = keywords
    assert len(dags) == len(SHIPPED) == len(tasks)
    health = dags["opslib__health_check__ideas"]
    assert ast.literal_eval(health["schedule"]) == "*/5 * * * *"
    assert ast.literal_eval(health["catchup"]) is False
    assert ast.literal_eval(health["max_active_runs"]) == 1
    task = tasks["opslib__health_check__ideas"]
    command = ast.literal_eval(task["bash_command"].args[0])
    assert command.endswith(
        "opslib run health-check --profile ideas --timeout 240 --by cron -p halt_on_emergency=true"
    )
    assert ast.unparse(task["execution_timeout"]) == "timedelta(seconds=300)"
    schedules = {dag_id: ast.literal_eval(kw["schedule"]) for dag_id, kw in dags.items()}
    assert sorted(schedules.values()) == sorted(SHIPPED.values())


# keyword-only like Airflow's own: an argument Airflow 3 removed (schedule_interval) fails
STUB_DAG = """class DAG:
    def __init__(self, *, dag_id, schedule, start_date, catchup, max_active_runs, tags):
        pass
"""
STUB_OPERATOR = """class BashOperator:
    def __init__(self, *, task_id, dag, bash_command, execution_timeout):
        pass
"""
STANDARD_PROVIDER = "airflow/providers/standard/operators/bash.py"
AIRFLOW_LAYOUTS = {
    "airflow-2": {"airflow/__init__.py": STUB_DAG, "airflow/operators/bash.py": STUB_OPERATOR},
    "airflow-2-with-standard-provider": {
        "airflow/__init__.py": STUB_DAG,
        STANDARD_PROVIDER: STUB_OPERATOR,
    },
    # Airflow 3 still has a deprecated airflow.DAG; the stub has not, to see which is used
    "airflow-3": {
        "airflow/__init__.py": "",
        "airflow/sdk/__init__.py": STUB_DAG,
        STANDARD_PROVIDER: STUB_OPERATOR,
    },
}
LOAD_DAG_FILE = """import runpy, sys
space = runpy.run_path(sys.argv[1])
dags = [value for value in space.values() if type(value).__name__ == "DAG"]
print(space["DAG"].__module__, space["BashOperator"].__module__, len(dags))
"""


@pytest.mark.parametrize(
    ("airflow", "dag_from", "operator_from"),
    [
        ("airflow-2", "airflow", "airflow.operators.bash"),
        (
            "airflow-2-with-standard-provider",
            "airflow",
            "airflow.providers.standard.operators.bash",
        ),
        ("airflow-3", "airflow.sdk", "airflow.providers.standard.operators.bash"),
    ],
)
def test_the_airflow_file_imports_under_airflow_2_and_3(
    workspace: Workspace, tmp_path: Path, airflow: str, dag_from: str, operator_from: str
) -> None:
    for name, text in AIRFLOW_LAYOUTS[airflow].items():
        (tmp_path / "site" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "site" / name).write_text(text, encoding="utf-8")
    folder = workspace.root / "dags"
    assert workspace.opslib("schedule", "export", "--airflow", str(folder)).returncode == 0
    dag_file = folder / "opslib_runbooks.py"
    assert "# Runs on Airflow 2 (2.4 or later) and Airflow 3." in dag_file.read_text()
    loaded = subprocess.run(
        [sys.executable, "-c", LOAD_DAG_FILE, str(dag_file)],
        env={"PYTHONPATH": str(tmp_path / "site")},
        capture_output=True,
        text=True,
        check=False,
    )
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.split() == [dag_from, operator_from, str(len(SHIPPED))]


def test_k8s_cronjobs_run_opslib_with_the_schedule_and_a_deadline(workspace: Workspace) -> None:
    workspace.env["VIDEO_DSN"] = "postgresql://render:s3cret@db:5432/video"
    folder = workspace.root / "k8s"
    result = workspace.opslib(
        "schedule", "export", "--k8s", str(folder), "--image", "registry.example/opslib:1.4"
    )
    assert result.returncode == 0, result.stderr
    manifests = {path.stem: path.read_text(encoding="utf-8") for path in folder.glob("*.yaml")}
    assert len(manifests) == len(SHIPPED)
    assert not any("s3cret" in text for text in manifests.values())

    job = yaml.safe_load(manifests["opslib-evening-wrap-video"])
    assert (job["apiVersion"], job["kind"]) == ("batch/v1", "CronJob")
    assert job["metadata"]["name"] == "opslib-evening-wrap-video"
    spec = job["spec"]
    assert spec["schedule"] == "0 22 * * *"
    assert spec["concurrencyPolicy"] == "Forbid"
    job_spec = spec["jobTemplate"]["spec"]
    assert job_spec["backoffLimit"] == 0
    assert job_spec["activeDeadlineSeconds"] == 1800 + 60
    pod = job_spec["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    (container,) = pod["containers"]
    assert container["image"] == "registry.example/opslib:1.4"
    assert container["command"] == [
        "opslib", "run", "evening-wrap", "--profile", "video", "--timeout", "1800",
        "--by", "cron", "-p", "apply=true",
    ]  # fmt: skip


def test_k8s_export_drops_manifests_of_removed_entries_only(workspace: Workspace) -> None:
    folder = workspace.root / "k8s"
    folder.mkdir()
    (folder / "opslib-by-hand.yaml").write_text("kind: ConfigMap\n", encoding="utf-8")
    both = schedule_file(workspace, HEALTH_CHECK + MORNING_CHECK)
    assert (
        workspace.opslib("schedule", "--file", str(both), "export", "--k8s", str(folder)).returncode
        == 0
    )
    only_one = schedule_file(workspace, HEALTH_CHECK)
    assert (
        workspace.opslib(
            "schedule", "--file", str(only_one), "export", "--k8s", str(folder)
        ).returncode
        == 0
    )
    assert sorted(path.name for path in folder.iterdir()) == [
        "opslib-by-hand.yaml",
        "opslib-health-check-ideas.yaml",
    ]


def test_k8s_does_not_expand_a_dollar_in_a_parameter(workspace: Workspace) -> None:
    path = schedule_file(
        workspace,
        "- {runbook: health-check, profile: ideas, cron: '*/5 * * * *', timeout: 4 min,"
        " parameters: {approve: '$(SECRET)'}}\n",
    )
    (entry,) = load_schedule(path)
    command = cronjob(entry, "opslib:latest")["spec"]["jobTemplate"]["spec"]["template"]["spec"][
        "containers"
    ][0]["command"]
    assert command[-2:] == ["-p", "approve=$$(SECRET)"]  # Kubernetes reads $$ as a literal $


def test_a_relative_profile_path_means_the_file_in_the_project_wherever_it_is_checked(
    workspace: Workspace,
) -> None:
    # cron runs `cd PROJECT && opslib run ...`, so the path is read from the project root,
    # not from the directory `opslib schedule` happens to be run in (workspace.root here)
    path = schedule_file(
        workspace,
        "- {runbook: health-check, profile: parameters/profiles/ideas.yaml, "
        'cron: "*/5 * * * *", timeout: 4 min}\n',
    )
    result = workspace.opslib("schedule", "--file", str(path), "cron")
    assert result.returncode == 0, result.stderr
    assert "--profile parameters/profiles/ideas.yaml" in result.stdout
    missing = schedule_file(workspace, HEALTH_CHECK.replace("ideas", "parameters/nowhere.yaml"))
    refused = workspace.opslib("schedule", "--file", str(missing), "cron")
    assert refused.returncode == 3
    assert "entry 1 (line 1): profile: profile file parameters/nowhere.yaml does not exist" in (
        refused.stderr
    )


def test_each_profile_is_loaded_once_however_many_entries_name_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from opslib.schedule import entries as schedule_entries

    loaded: list[str] = []
    real = schedule_entries.load_profile

    def counting(name: str, base: Path | None = None):  # type: ignore[no-untyped-def]
        loaded.append(name)
        return real(name, base)

    monkeypatch.setattr(schedule_entries, "load_profile", counting)
    assert len(load_schedule()) == len(SHIPPED)
    assert sorted(loaded) == sorted({profile for _, profile in SHIPPED})
