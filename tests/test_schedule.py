"""The schedule: parameters/schedule.yaml validated, and written out for cron, Airflow and
Kubernetes exactly as a person would start each run."""

from __future__ import annotations

import ast
import re
import shlex
import subprocess
from pathlib import Path

import pytest
import yaml
from conftest import Workspace

from opslib.schedule.cron import cron_line
from opslib.schedule.entries import load_schedule
from opslib.schedule.export import cronjob

SHIPPED = {
    ("morning-check", "demo"): "0 7 * * *",
    ("health-check", "ideas"): "*/5 * * * *",
    ("hourly-monitor", "video"): "0 * * * *",
    ("evening-wrap", "video"): "0 22 * * *",
    ("weekly-review", "catalog"): "0 9 * * 1",
    ("monthly-maintenance", "catalog"): "0 3 1 * *",
    ("pre-processing-checklist", "mediaplan"): "30 5 * * *",
    ("post-processing-verification", "mediaplan"): "0 8 * * *",
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


def test_the_shipped_schedule_is_valid_and_complete() -> None:
    entries = load_schedule()
    assert {(e.runbook, e.profile): e.cron for e in entries} == SHIPPED
    by_pair = {(e.runbook, e.profile): e for e in entries}
    assert by_pair["health-check", "ideas"].timeout == 240
    assert by_pair["evening-wrap", "video"].parameters == {"apply": True}
    assert {e.by for e in entries} == {"cron"}


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
            "cron: '*/61 * * * *' is not a five-field cron expression",
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
    line = result.stdout.strip()
    words = shlex.split(as_cron_runs_it(line))
    assert line.startswith("*/5 * * * * cd ")
    assert words[:3] == ["cd", str(workspace.home), "&&"]
    lock = workspace.reports / ".locks" / "cron--health-check--ideas.lock"
    log = workspace.reports / "cron" / "health-check--ideas.log"
    assert ["mkdir", "-p", str(lock.parent), str(log.parent)] == words[3:7]
    # the archive the installer uses is the one the cron run writes to
    assert f"OPSLIB_REPORTS_DIR={workspace.reports}" in words
    flock = words.index("flock")
    assert words[flock : flock + 3] == ["flock", "-n", str(lock)]
    # an outer bound a minute past opslib's own timeout, so a hang never holds the lock
    assert words[flock + 3 : flock + 7] == ["timeout", "-k", "30", "300"]
    assert words[flock + 8 :] == [
        "run", "health-check", "--profile", "ideas", "--timeout", "240", "--by", "cron",
        ">>", str(log), "2>&1",
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
    # run the very line through a shell, with a stand-in that prints what opslib would get
    stand_in = tmp_path / "print-args"
    stand_in.write_text('#!/bin/sh\nfor arg in "$@"; do printf "%s\\n" "$arg"; done\n')
    stand_in.chmod(0o755)
    command = as_cron_runs_it(cron_line(entry))
    words = shlex.split(command)
    program = words[words.index("flock") + 3]
    command = command.replace(f" {shlex.quote(program)} ", f" {stand_in} ", 1)
    subprocess.run(["sh", "-c", command], check=True, env={"PATH": "/usr/bin:/bin", "HOME": "/x"})
    logged = (workspace.reports / "cron" / "monthly-maintenance--catalog.log").read_text()
    assert logged.splitlines()[-2:] == ["-p", f"config={value}"]


def test_the_airflow_file_has_one_dag_per_entry_with_its_schedule(workspace: Workspace) -> None:
    workspace.env["IDEAS_DSN"] = "postgresql://studio:s3cret@db:5432/ideas"
    folder = workspace.root / "dags"
    result = workspace.opslib("schedule", "export", "--airflow", str(folder))
    assert result.returncode == 0, result.stderr
    source = (folder / "opslib_runbooks.py").read_text(encoding="utf-8")
    assert "s3cret" not in source and "IDEAS_DSN" not in source

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
    assert command.endswith("opslib run health-check --profile ideas --timeout 240 --by cron")
    assert ast.unparse(task["execution_timeout"]) == "timedelta(seconds=300)"
    schedules = {dag_id: ast.literal_eval(kw["schedule"]) for dag_id, kw in dags.items()}
    assert sorted(schedules.values()) == sorted(SHIPPED.values())


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
