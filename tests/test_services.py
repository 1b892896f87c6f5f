"""Service control against real processes: a real supervisord running a program, plain
command services (the demo's stand-in worker), and systemd where this machine has it."""

from __future__ import annotations

import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from service_fixtures import (
    Supervisor,
    end,
    free_port,
    pids_of,
    worker_command,
    worker_regex,
)
from support import act

from opslib.actions.pipeline import StartPipeline, StopPipeline
from opslib.actions.services import RestartService, StartServices, StopServices
from opslib.errors import ProfileError
from opslib.probes.services import services_running, state
from opslib.profiles import Profile, load_profile
from opslib.profiles.services import argv
from opslib.status import Status

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")


def profile(folder: Path, text: str) -> Profile:
    path = folder / "profile.yaml"
    path.write_text(text)
    return load_profile(str(path))


def worker_service(name: str, folder: Path, **settings: str) -> str:
    """A command service running the stand-in worker, known by its anchored regex."""
    command = ", ".join(f'"{word}"' for word in worker_command(name, folder)[1:])
    lines = [
        f"  {name}:",
        f"    start: [python, {command}]",
        f"    process: '{worker_regex(name, folder)}'",
        "    start_timeout: 5 s",
        "    stop_timeout: 3 s",
        *(f"    {key}: {value}" for key, value in settings.items()),
    ]
    return "\n".join(lines) + "\n"


def events(folder: Path) -> list[str]:
    """`NAME started` / `NAME stopped`, in the order the workers wrote them."""
    lines = (folder / "events.log").read_text().splitlines()
    return [" ".join(line.split()[1:3]) for line in lines]


@pytest.fixture
def leftovers(tmp_path: Path) -> Iterator[None]:
    """Whatever this test started under its folder is ended afterwards, by pid."""
    yield
    end(
        [
            process.pid
            for process in psutil.process_iter(["cmdline"])
            if str(tmp_path) in " ".join(process.info["cmdline"] or [])
        ]
    )


@pytest.fixture
def supervisor(tmp_path: Path) -> Iterator[Supervisor]:
    running = Supervisor.start(tmp_path / "supervisor")
    yield running
    running.stop()


def test_a_supervisor_program_restarts_with_a_new_pid_and_a_dry_run_changes_nothing(
    supervisor: Supervisor, tmp_path: Path
) -> None:
    api = profile(
        tmp_path,
        f"""name: supervised
services:
  api:
    supervisor: {{program: api, config: "{supervisor.config}"}}
    port: {supervisor.port}
    start_timeout: 5 s
    stop_timeout: 5 s
""",
    )
    before = supervisor.api_pid()
    seen = state(api, "api")
    assert (seen.running, seen.healthy) == (True, True)
    assert [info.pid for info in seen.pids] == [before]

    dry = act(RestartService(api, "api"))
    assert dry.mode == "dry-run"
    assert [change["do"] for change in dry.plan.changes] == ["stop", "start"]
    assert dry.plan.changes[0]["via"] == "supervisorctl stop api"
    assert supervisor.api_pid() == before  # nothing was touched

    applied = act(RestartService(api, "api"), approve=dry.plan.hash)
    assert applied.mode == "applied" and applied.result.status is Status.OK, applied.message
    assert applied.applied.remeasured and applied.applied.after_count == 0
    after = supervisor.api_pid()
    assert after != before and not psutil.pid_exists(before)
    (metric,) = services_running(api)
    assert metric.value == 1 and f"port {supervisor.port} listening" in metric.summary


def test_stop_pipeline_halts_stops_in_reverse_and_spares_a_lookalike(
    tmp_path: Path, leftovers: None
) -> None:
    folder = tmp_path / "svc"
    database = tmp_path / "pipeline.db"
    with sqlite3.connect(database) as connection:
        connection.execute(
            "CREATE TABLE control (key TEXT PRIMARY KEY, value TEXT, updated_at TEXT)"
        )
        connection.execute("INSERT INTO control VALUES ('halt', 'off', '2026-12-01T00:00:00.000Z')")
    connection.close()
    pipeline = profile(
        tmp_path,
        f"""name: three
targets:
  database:
    url: sqlite:///{database}
halt:
  table: control
services:
{worker_service("fetch", folder)}{worker_service("render", folder)}{worker_service("publish", folder)}""",
    )
    started = act(StartServices(pipeline), apply=True)
    assert started.result.status is Status.OK, started.message
    assert events(folder) == ["fetch started", "render started", "publish started"]
    # the same program and name, in a folder under the service's: not the profile's
    lookalike = subprocess.Popen(worker_command("fetch", folder / "other"), cwd=tmp_path)
    running = {name: pids_of(folder, name) for name in ("fetch", "render", "publish")}
    assert all(len(pids) == 1 for pids in running.values()), running

    dry = act(StopPipeline(pipeline))
    assert dry.mode == "dry-run"
    assert [part.action for part in dry.plan.parts] == ["halt_pipeline", "stop_services"]
    stops = [change["change"]["service"] for change in dry.plan.changes if change["step"] == 2]
    assert stops == ["publish", "render", "fetch"]
    assert {name: pids_of(folder, name) for name in running} == running  # dry: untouched

    done = act(StopPipeline(pipeline), approve=dry.plan.hash)
    assert done.mode == "applied" and done.result.status is Status.OK, done.message
    assert done.applied.after_count == 0 and done.applied.remeasured
    assert events(folder)[3:] == ["publish stopped", "render stopped", "fetch stopped"]
    assert all(not pids_of(folder, name) for name in running)
    assert lookalike.poll() is None  # similar command line, not named: still running
    with sqlite3.connect(database) as connection:
        assert connection.execute("SELECT value FROM control").fetchone() == ("on",)
    connection.close()
    lookalike.terminate()
    lookalike.wait(5)


def test_start_pipeline_refuses_while_a_halt_reason_holds_and_starts_when_forced(
    tmp_path: Path, leftovers: None
) -> None:
    folder = tmp_path / "svc"
    down = profile(
        tmp_path,
        f"""name: down
targets:
  database:
    url: sqlite:///{tmp_path / "missing.db"}
halt:
  table: control
services:
{worker_service("worker", folder)}""",
    )
    refused = act(StartPipeline(down), apply=True)
    assert refused.mode == "refused" and refused.result.status is Status.WARNING
    assert "database does not answer" in refused.message
    assert not pids_of(folder, "worker")

    forced = act(StartPipeline(down, force=True))
    assert forced.mode == "dry-run"
    reasons = forced.plan.changes[0]["forced_despite"]  # hashed with the plan
    assert reasons and reasons[0].startswith("the database does not answer")
    assert "FORCED despite" in forced.plan.summary
    assert not pids_of(folder, "worker")

    assert [part.action for part in forced.plan.parts] == ["start_services"]  # no flag to lower

    applied = act(StartPipeline(down, force=True), approve=forced.plan.hash)
    assert applied.mode == "applied" and applied.result.status is Status.OK, applied.message
    assert len(pids_of(folder, "worker")) == 1

    # the flag cannot be raised with the database down; the services stop all the same
    stopped = act(StopPipeline(down), apply=True)
    assert "halt flag left out: the database does not answer" in stopped.plan.summary
    assert stopped.result.status is Status.OK and not pids_of(folder, "worker")


def test_a_service_that_never_proves_healthy_is_reported_within_its_start_timeout(
    tmp_path: Path, leftovers: None
) -> None:
    folder = tmp_path / "svc"
    deaf = profile(  # the worker never listens on the port its proof asks for
        tmp_path,
        f"""name: deaf
services:
{worker_service("deaf", folder, port=str(free_port()), start_timeout="1.5 s")}"""
        + worker_service("after", folder),
    )
    began = time.monotonic()
    outcome = act(StartServices(deaf), apply=True)
    took = time.monotonic() - began
    assert outcome.mode == "applied" and outcome.result.status is Status.WARNING
    assert "not resolved: 2" in outcome.message
    assert 1.5 <= took < 4, took
    first, second = outcome.applied.changes
    assert first["healthy"] is False and "not healthy within 1.5 s" in first["result"]
    assert "not listening" in first["result"]
    assert second["result"] == "not started: deaf is not healthy"
    assert not pids_of(folder, "after")
    (deaf_metric, after_metric) = services_running(deaf)
    assert deaf_metric.value == 0 and "NOT healthy" in deaf_metric.summary
    assert after_metric.value == 0 and "DOWN" in after_metric.summary
    stopped = act(StopServices(deaf, ("deaf",)), apply=True)
    assert stopped.result.status is Status.OK and not pids_of(folder, "deaf")


def test_sigkill_follows_only_where_the_service_allows_it_and_the_plan_says_so(
    tmp_path: Path, leftovers: None
) -> None:
    stubborn = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"

    def service(kill: bool) -> Profile:
        return profile(
            tmp_path,
            f"""name: stubborn
services:
  deaf:
    start: [python, -c, "{stubborn}", {tmp_path}]
    process: 'time.sleep\\(60\\)\\S* {tmp_path}$'
    stop_timeout: 0.5 s
    kill_after_stop_timeout: {str(kill).lower()}
""",
        )

    polite = service(kill=False)
    assert act(StartServices(polite), apply=True).result.status is Status.OK
    (pid,) = [info.pid for info in state(polite, "deaf").pids]
    kept = act(StopServices(polite), apply=True)
    assert "SIGKILL" not in kept.plan.changes[0]["via"]
    assert kept.result.status is Status.WARNING and kept.applied.after_count == 1
    assert psutil.pid_exists(pid)  # SIGTERM ignored, and no SIGKILL was planned

    forceful = service(kill=True)
    killed = act(StopServices(forceful), apply=True)
    assert killed.plan.changes[0]["via"] == "SIGTERM, SIGKILL after 0.5 s"
    assert killed.result.status is Status.OK, killed.message
    assert not state(forceful, "deaf").running


def test_a_profile_declares_each_service_one_way_and_keeps_secrets_out_of_argv(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ProfileError, match="exactly one of"):
        profile(tmp_path, "name: x\nservices:\n  a: {systemd: a.service, start: [/bin/true]}\n")
    with pytest.raises(ProfileError, match="needs a health proof"):
        profile(tmp_path, "name: x\nservices:\n  a: {start: [sleep, '9'], stop: [/bin/true]}\n")
    with pytest.raises(ProfileError, match="not an endpoint of targets.http"):
        profile(tmp_path, "name: x\nservices:\n  a: {systemd: a.service, http: api}\n")
    monkeypatch.setenv("WORKER_TOKEN", "s3cr3t-token-value")
    secret = profile(
        tmp_path,
        "name: x\nservices:\n  a:\n    start: [worker, --token, '${WORKER_TOKEN}']\n"
        "    process: worker\n    env: {TOKEN: '${WORKER_TOKEN}'}\n",
    )
    with pytest.raises(ProfileError, match="from `env:`, never from its arguments"):
        argv(secret, "a", "start")
    off = profile(tmp_path, "name: x\nservices:\n  a: {systemd: a.service, enabled: '${A_ON:-}'}\n")
    assert not off.provides("services")
    monkeypatch.setenv("A_ON", "yes")
    assert off.provides("services")


@pytest.mark.skipif(
    not Path("/run/systemd/system").exists(), reason="this machine does not run systemd"
)
def test_a_systemd_unit_restarts_with_a_new_main_pid(tmp_path: Path) -> None:
    unit = f"opslib-test-{tmp_path.name[-12:]}.service"
    path = Path("/run/systemd/system") / unit
    path.write_text(
        f"[Service]\nExecStart={worker_command('unit', tmp_path)[0]} -c 'import time; time.sleep(600)'\n"
    )
    subprocess.run(["systemctl", "daemon-reload"], check=True, timeout=30)
    subprocess.run(["systemctl", "start", unit], check=True, timeout=30)
    try:
        managed = profile(tmp_path, f"name: unit\nservices:\n  u: {{systemd: {unit}}}\n")
        before = state(managed, "u").pids[0].pid
        outcome = act(RestartService(managed, "u"), apply=True)
        assert outcome.result.status is Status.OK, outcome.message
        assert state(managed, "u").pids[0].pid != before
    finally:
        subprocess.run(["systemctl", "stop", unit], timeout=30)
        path.unlink()
        subprocess.run(["systemctl", "daemon-reload"], timeout=30)
