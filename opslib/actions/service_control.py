"""The moves of service control, one service at a time: start it (through its manager,
or its start command detached), wait for its health proof, stop it (through its manager,
its stop command, or SIGTERM to exactly the processes planned, re-identified by start
time), and check that nothing of it is left. The actions in `actions.services` plan them.
"""

from __future__ import annotations

import os
import subprocess
import time
from typing import Any

from opslib import paths
from opslib.probes import ProbeError, processes
from opslib.probes.services import ServiceState, run, state, supervisorctl, systemd_unit
from opslib.profiles import Profile
from opslib.profiles.services import argv, environment

POLL_S = 0.1
MANAGER_GRACE_S = 5.0  # what systemctl or supervisorctl may take beyond the service's own timeout
KILL_WAIT_S = 2.0
_started: list[subprocess.Popen[bytes]] = []  # command services started here, reaped once gone


def look(profile: Profile, name: str) -> ServiceState:
    """The service's state now; one that cannot be read counts as neither up nor healthy
    (while waiting on it, or measuring a change's result) and says it was not read."""
    try:
        return state(profile, name)
    except ProbeError as exc:
        kind = profile.services[name].kind
        return ServiceState(name, kind, False, False, f"not read: {exc.reason}", unreadable=True)


def _via(profile: Profile, name: str, verb: str) -> str:
    """How the service is started or stopped, as the plan shows it."""
    service = profile.services[name]
    kill = f", SIGKILL after {service.stop_timeout:g} s" if _kills(profile, name) else ""
    if service.kind == "systemd":
        how = f"systemctl {verb} {systemd_unit(profile, name)}"
    elif service.kind == "supervisor":
        how = f"supervisorctl {verb} {service.supervisor.program}"
    elif verb == "start":
        return " ".join(argv(profile, name, "start"))
    elif service.stop:
        how = " ".join(argv(profile, name, "stop"))
    else:
        return f"SIGTERM{kill}"
    if verb == "stop" and service.process:
        how += f", then SIGTERM{kill} to the listed processes still running"
    return how


def _kills(profile: Profile, name: str) -> bool:
    return profile.services[name].kill_after_stop_timeout


def stop_change(profile: Profile, seen: ServiceState) -> dict[str, Any]:
    """What stopping the service means now: how, and for a command service with a
    `process:` regex, exactly which processes (pid and start time)."""
    service = profile.services[seen.name]
    change: dict[str, Any] = {
        "service": seen.name,
        "do": "stop",
        "via": _via(profile, seen.name, "stop"),
    }
    if service.process:  # a unit's or program's strays too: what the regex matches
        change["pids"] = [[info.pid, info.started] for info in seen.pids if info.started]
        change["kill"] = _kills(profile, seen.name)
    return change


def start_change(profile: Profile, name: str) -> dict[str, Any]:
    service = profile.services[name]
    return {
        "service": name,
        "do": "start",
        "via": _via(profile, name, "start"),
        "proof": service.proof,
        "within_s": service.start_timeout,
    }


def alive(change: dict[str, Any]) -> list[list[Any]]:
    return [
        [pid, started] for pid, started in change.get("pids", []) if processes.is_same(pid, started)
    ]


def _manager(profile: Profile, name: str, verb: str, timeout_s: float) -> None:
    """`systemctl VERB unit` or `supervisorctl VERB program`; a refusal raises."""
    service = profile.services[name]
    if service.kind == "systemd":
        code, output = run(["systemctl", verb, systemd_unit(profile, name)], timeout_s)
    else:
        program = service.supervisor.program
        code, output = run(supervisorctl(profile, name, verb, program), timeout_s)
        if "ERROR" in output and "already started" not in output and "not running" not in output:
            code = code or 1
    if code != 0:
        raise ProbeError(f"{verb} {name} failed (exit {code}): {output[-300:]}")


def stop_one(profile: Profile, change: dict[str, Any]) -> str:
    """Stop one service as planned; what happened, in a few words."""
    name = change["service"]
    service = profile.services[name]
    deadline = time.monotonic() + service.stop_timeout
    if service.kind != "commands":
        _manager(profile, name, "stop", service.stop_timeout + MANAGER_GRACE_S)
        for pid, started in alive(change):  # planned processes its manager left behind
            processes.send(pid, started, "SIGTERM", 0)
    elif service.stop:
        code, output = run(
            argv(profile, name, "stop"), service.stop_timeout, environment(profile, name)
        )
        if code != 0:
            raise ProbeError(f"the stop command of {name} failed (exit {code}): {output[-300:]}")
    else:
        for pid, started in alive(change):
            processes.send(pid, started, "SIGTERM", 0)
    while alive(change) and time.monotonic() < deadline:
        _reap()
        time.sleep(POLL_S)
    left = alive(change)
    if left and change.get("kill"):
        for pid, started in left:
            processes.send(pid, started, "SIGKILL", KILL_WAIT_S)
        return f"SIGKILL sent to {', '.join(str(pid) for pid, _ in left)}"
    return "stopped" if not left else f"pids {', '.join(str(pid) for pid, _ in left)} still running"


def start_one(profile: Profile, name: str) -> subprocess.Popen[bytes] | None:
    """Start one service: through its manager, or its start command detached in a session
    of its own (from the project root, where the profile's relative paths start)."""
    service = profile.services[name]
    if service.kind != "commands":
        _manager(profile, name, "start", service.start_timeout + MANAGER_GRACE_S)
        return None
    child = subprocess.Popen(
        argv(profile, name, "start"),
        env={**os.environ, **environment(profile, name)},
        cwd=paths.project_root(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    _started.append(child)
    return child


def _reap() -> None:
    """Collect the exit status of command services started here that have ended."""
    for child in list(_started):
        if child.poll() is not None:
            _started.remove(child)


def wait_healthy(
    profile: Profile, name: str, child: subprocess.Popen[bytes] | None = None
) -> tuple[bool, str]:
    """Poll the service until its health proof holds or its `start_timeout` passes;
    a start command that fails before then ends the wait at once."""
    timeout_s = profile.services[name].start_timeout
    deadline = time.monotonic() + timeout_s
    while True:
        seen = look(profile, name)
        if seen.healthy:
            return True, seen.detail
        code = child.poll() if child is not None else None
        if code not in (None, 0):
            return False, f"its start command exited with code {code}; {seen.detail}"
        if time.monotonic() >= deadline:
            return False, f"not healthy within {timeout_s:g} s: {seen.detail}"
        time.sleep(POLL_S)


def _stopped_now(profile: Profile, name: str, change: dict[str, Any]) -> bool:
    """Whether nothing of the service runs: its manager or regex sees nothing, and none
    of the processes planned for it survives (a reading that fails counts as running)."""
    try:
        seen = state(profile, name)
    except ProbeError:
        return False
    return not seen.running and not seen.pids and not alive(change)


def wait_stopped(profile: Profile, name: str, change: dict[str, Any]) -> bool:
    deadline = time.monotonic() + profile.services[name].stop_timeout
    while not _stopped_now(profile, name, change):
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL_S)
    return True
