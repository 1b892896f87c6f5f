"""The pipeline's services (`services:`): whether each runs and proves itself healthy.

Read-only: a unit is asked `systemctl show`, a supervisor program `supervisorctl status`,
a command-defined service its `status:` command; processes are found by the service's
`process:` regex (`probes.processes`), an endpoint answers as `probes.http` asks it, a
port listens when the kernel lists a listening socket on it. Every command runs under a
timeout, without a shell; a service that cannot be read is UNKNOWN with the reason.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from opslib import paths
from opslib.errors import ProfileError
from opslib.probes import Metric, ProbeError, processes
from opslib.probes.http import check_endpoint
from opslib.probes.listeners import listening_sockets
from opslib.profiles import Profile
from opslib.profiles.secrets import scrub
from opslib.profiles.services import argv, enabled_services, environment, process_regex

QUERY_TIMEOUT_S = 10.0  # a status question to systemd, supervisord or a status command
SUPERVISOR_UP = {"RUNNING"}


@dataclass
class ServiceState:
    """What one look at a service found. `pids` are its processes as identified now
    (pid and start time): the manager's main pid, or the `process:` regex's matches."""

    name: str
    kind: str
    running: bool
    healthy: bool
    detail: str
    pids: list[processes.ProcessInfo] = field(default_factory=list)
    unreadable: bool = False  # the look failed: neither running nor stopped is known

    @property
    def row(self) -> dict[str, object]:
        return {
            "service": self.name,
            "kind": self.kind,
            "running": self.running,
            "healthy": self.healthy,
            "pids": ", ".join(str(info.pid) for info in self.pids),
            "detail": self.detail,
        }


def run(command: list[str], timeout_s: float, env: dict[str, str] | None = None) -> tuple[int, str]:
    """(exit code, output) of a command run without a shell under `timeout_s`; a command
    that cannot run or does not finish is a `ProbeError` saying so."""
    try:
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            env={**os.environ, **(env or {})},
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise ProbeError(f"{Path(command[0]).name} did not finish within {timeout_s:g} s") from None
    except OSError as exc:
        raise ProbeError(f"{Path(command[0]).name} could not run: {exc.strerror or exc}") from None
    return done.returncode, scrub((done.stdout + done.stderr).strip())


def supervisorctl(profile: Profile, name: str, *words: str) -> list[str]:
    """The supervisorctl command for the service's supervisord: `-c` a config file, `-s`
    a server URL. The one installed next to this Python is preferred."""
    service = profile.services[name]
    config = profile.expand(service.supervisor.config, f"services.{name}.supervisor.config")
    local = Path(sys.executable).with_name("supervisorctl")
    program = str(local) if local.exists() else shutil.which("supervisorctl") or "supervisorctl"
    where = ["-s", config] if "://" in config else ["-c", str(paths.resolve_path(config))]
    return [program, *where, *words]


def systemd_unit(profile: Profile, name: str) -> str:
    return profile.expand(profile.services[name].systemd, f"services.{name}.systemd")


def _supervisor(profile: Profile, name: str) -> tuple[bool, str, list[int]]:
    program = profile.services[name].supervisor.program
    code, output = run(supervisorctl(profile, name, "status", program), QUERY_TIMEOUT_S)
    lines = [
        line.split()
        for line in output.splitlines()
        if line.split() and line.split()[0].split(":")[0] == program
    ]
    if not lines or len(lines[0]) < 2 or "ERROR" in output:
        raise ProbeError(f"supervisorctl status {program} (exit {code}): {output or 'no answer'}")
    states = [words[1] for words in lines]
    pids = [int(words[3].rstrip(",")) for words in lines if len(words) > 3 and words[2] == "pid"]
    return all(state in SUPERVISOR_UP for state in states), f"supervisor: {', '.join(states)}", pids


def _systemd(profile: Profile, name: str) -> tuple[bool, str, list[int]]:
    unit = systemd_unit(profile, name)
    show = ["systemctl", "show", "--property=LoadState,ActiveState,SubState,MainPID", unit]
    code, output = run(show, QUERY_TIMEOUT_S)
    values = dict(line.partition("=")[::2] for line in output.splitlines() if "=" in line)
    if code != 0 or values.get("LoadState") in (None, "not-found"):
        raise ProbeError(f"systemd has no unit {unit} (exit {code}): {output or 'no answer'}")
    state = f"systemd: {values.get('ActiveState')} ({values.get('SubState')})"
    pid = int(values.get("MainPID") or 0)
    return values.get("ActiveState") == "active", state, [pid] if pid else []


def _status_command(profile: Profile, name: str) -> tuple[bool, str]:
    code, output = run(argv(profile, name, "status"), QUERY_TIMEOUT_S, environment(profile, name))
    last = output.splitlines()[-1] if output else ""
    return code == 0, f"status command exit {code}" + (f": {last[:80]}" if last else "")


def listening(port: int) -> bool:
    """Whether a TCP socket of this network namespace listens on `port`."""
    return any(bound == port for _address, bound, _pid in listening_sockets())


def matched(profile: Profile, name: str) -> list[processes.ProcessInfo]:
    """The processes the service's `process:` regex matches now (none without one)."""
    regex = process_regex(profile, name)
    return processes.matching([regex]) if regex else []


def health(profile: Profile, name: str) -> tuple[bool, str]:
    """Whether the service's health proof holds now, and what was seen."""
    service = profile.services[name]
    if service.http:
        metric, _row = check_endpoint(profile, service.http, profile.targets.http[service.http])
        return metric.verdict is None, f"http {service.http}: {metric.summary}"
    if service.port:
        up = listening(service.port)
        return up, f"port {service.port} {'listening' if up else 'not listening'}"
    if service.process:
        found = matched(profile, name)
        return bool(found), f"{len(found)} process(es) match {process_regex(profile, name)}"
    if service.status:
        return _status_command(profile, name)
    raise ProbeError(f"services.{name} has no health proof")


def state(profile: Profile, name: str) -> ServiceState:
    """One look at the service: running (its manager or its processes say so) and
    healthy (its proof holds too)."""
    service = profile.services[name]
    try:
        if service.kind in ("supervisor", "systemd"):
            reader = _supervisor if service.kind == "supervisor" else _systemd
            running, seen, pids = reader(profile, name)
            found = [info for pid in pids if (info := processes.describe(pid)) is not None]
            found += [info for info in matched(profile, name) if info.pid not in pids]
            if not running or service.proof == service.kind:
                return ServiceState(name, service.kind, running, running, seen, found)
            healthy, proof = health(profile, name)
            return ServiceState(name, service.kind, True, healthy, f"{seen}; {proof}", found)
        found = matched(profile, name)
        if service.process:
            running = bool(found)
            seen = f"{len(found)} process(es) match {process_regex(profile, name)}"
        elif service.status:
            running, seen = _status_command(profile, name)
        else:
            running, seen = health(profile, name)
        if not running or service.proof in ("process", "status"):
            return ServiceState(name, "commands", running, running, seen, found)
        healthy, proof = health(profile, name)
        return ServiceState(name, "commands", True, healthy, f"{seen}; {proof}", found)
    except ProfileError as exc:  # a variable it names is not set
        raise ProbeError(str(exc)) from None


Look = tuple[str, ServiceState | ProbeError]


def _looks(profile: Profile) -> list[Look]:
    """One look at every service switched on, in start order (a failure in its place)."""
    looks: list[Look] = []
    for name in enabled_services(profile):
        try:
            looks.append((name, state(profile, name)))
        except ProbeError as exc:
            looks.append((name, exc))
    if not looks:
        raise ProbeError(f"{profile.source}: every service is switched off")
    return looks


def _row(profile: Profile, look: Look) -> dict[str, object]:
    name, seen = look
    if isinstance(seen, ServiceState):
        return seen.row
    return {"service": name, "kind": profile.services[name].kind, "detail": seen.reason}


def overview(profile: Profile) -> pd.DataFrame:
    """The services as they are now, one row each, unjudged (a runbook's "before")."""
    return pd.DataFrame([_row(profile, look) for look in _looks(profile)])


def services_running(profile: Profile) -> list[Metric]:
    """Per service switched on, 1 when it runs and its health proof holds, else 0; the
    last metric carries the table of them all."""
    looks = _looks(profile)
    metrics = []
    for name, seen in looks:
        if isinstance(seen, ProbeError):
            metrics.append(Metric(None, seen.reason, label=name, verdict=seen.status))
            continue
        word = "healthy" if seen.healthy else "running, NOT healthy" if seen.running else "DOWN"
        metrics.append(Metric(int(seen.healthy), f"{word}: {seen.detail}", label=name))
    metrics[-1].table = pd.DataFrame([_row(profile, look) for look in looks])
    return metrics
