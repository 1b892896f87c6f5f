"""The pipeline's services (`services:`), in the order they start; they stop in reverse.

Each service is managed one way: a systemd unit (`systemd: name.service`), a supervisor
program (`supervisor: {program, config}`, the config file or the server URL
`supervisorctl` is pointed at), or explicit commands (`start:`, optional `stop:` and
`status:`, each an argv list run without a shell). Each proves it is up with one health
proof: a command-line regex (`process:`), a TCP port that must listen (`port:`), an
endpoint of `targets.http` (`http:`), or else the status command's exit code (a unit or a
program then counts as up when its manager says it runs).

`${VAR}` references in the commands, `env:` and `process:` are expanded when used. A
command's arguments must not carry a secret: a value the secrets machinery registered is
refused there, and goes through `env:` instead. `python` as a command's program is the
interpreter opslib runs under. A service whose `enabled:` (or whose unit, config or start
program) resolves to nothing is switched off, as an empty `${VAR:-}` switches off a target.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import Field, StringConstraints, model_validator

from opslib.errors import ProfileError
from opslib.profiles.fields import Regex, Seconds, StrictModel
from opslib.profiles.secrets import scrub

if TYPE_CHECKING:
    from opslib.profiles.profile import Profile

ServiceName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.@-]*$")]
Argv = Annotated[list[str], Field(min_length=1)]
_OFF = {"", "0", "false", "no", "off"}


class Supervisor(StrictModel):
    """A program of a supervisord: `config` is its configuration file (`supervisorctl -c`)
    or its server URL (`unix:///run/supervisor.sock`, `http://host:9001`: `-s`)."""

    program: str
    config: str


class Service(StrictModel):
    systemd: str | None = None  # a unit name: `scentmatch-pipeline.service`
    supervisor: Supervisor | None = None
    start: Argv | None = None  # run detached; the service is up once its proof holds
    stop: Argv | None = None
    status: Argv | None = None  # exit code 0: up
    env: dict[str, str] = {}  # for the commands; where their secrets go
    process: Regex | None = None  # the service's processes, by command line
    port: int | None = Field(default=None, ge=1, le=65535)  # must listen on this machine
    http: str | None = None  # an endpoint name of targets.http
    start_timeout: Seconds = 30.0
    stop_timeout: Seconds = 30.0
    # after stop_timeout, SIGKILL the planned processes still running (else: reported)
    kill_after_stop_timeout: bool = False
    enabled: bool | str = True  # false, or a `${VAR:-}` resolving to '', no, off or 0: off

    @model_validator(mode="after")
    def _one_way(self) -> Service:
        ways = [way for way in ("systemd", "supervisor", "start") if getattr(self, way)]
        if len(ways) != 1:
            raise ValueError(
                "a service is exactly one of `systemd:`, `supervisor:` or `start:` "
                f"(got {', '.join(ways) or 'none'})"
            )
        if self.kind != "commands" and (self.stop or self.status or self.env):
            raise ValueError("`stop:`, `status:` and `env:` belong to a `start:` service")
        if self.port is not None and self.http is not None:
            raise ValueError("one health proof: `port:` or `http:`, not both")
        if self.kind == "commands":
            if not (self.process or self.port or self.http or self.status):
                raise ValueError(
                    "a `start:` service needs a health proof: `process:`, `port:`, `http:` "
                    "or `status:`"
                )
            if not (self.stop or self.process):
                raise ValueError("a `start:` service needs `stop:` or a `process:` regex to stop")
        return self

    @property
    def kind(self) -> str:
        return "systemd" if self.systemd else "supervisor" if self.supervisor else "commands"

    @property
    def proof(self) -> str:
        """Which health proof the service has."""
        if self.http:
            return "http"
        if self.port:
            return "port"
        if self.process:
            return "process"
        return "status" if self.status else self.kind


def check_endpoints(services: dict[str, Service], endpoints: dict[str, Any]) -> None:
    """Every `http:` names an endpoint of `targets.http` (called as the profile loads)."""
    for name, service in services.items():
        if service.http and service.http not in endpoints:
            known = ", ".join(endpoints) or "none"
            raise ValueError(
                f"services.{name}.http: {service.http!r} is not an endpoint of targets.http "
                f"(known: {known})"
            )


def enabled(profile: Profile, name: str) -> bool:
    """Whether the service is switched on: `enabled:` and its address resolve to something."""
    service, key = profile.services[name], f"services.{name}"
    switch = service.enabled
    if isinstance(switch, str):
        switch = profile.expand(switch, f"{key}.enabled").strip().lower() not in _OFF
    if not switch:
        return False
    if service.kind == "systemd":
        address = profile.expand(service.systemd, f"{key}.systemd")
    elif service.kind == "supervisor":
        address = profile.expand(service.supervisor.config, f"{key}.supervisor.config")
    else:
        address = profile.expand(service.start[0], f"{key}.start[0]")
    return address.strip() != ""


def enabled_services(profile: Profile) -> list[str]:
    """The services switched on, in start order."""
    return [name for name in profile.services if enabled(profile, name)]


def argv(profile: Profile, name: str, which: str) -> list[str]:
    """The service's `start`/`stop`/`status` command, expanded; refused when an argument
    resolves to a secret (it would show in every process listing)."""
    raw = getattr(profile.services[name], which)
    words = []
    for index, word in enumerate(raw):
        key = f"services.{name}.{which}[{index}]"
        value = profile.expand(word, key)
        if scrub(value) != value:
            raise ProfileError(
                f"{profile.source}: {key} resolves to a secret; a command takes its secrets "
                "from `env:`, never from its arguments"
            )
        words.append(value)
    if words[0] == "python":
        words[0] = sys.executable
    return words


def environment(profile: Profile, name: str) -> dict[str, str]:
    """The service's `env:`, expanded (their values are registered secrets where secret)."""
    return {
        variable: profile.expand(value, f"services.{name}.env.{variable}")
        for variable, value in profile.services[name].env.items()
    }


def process_regex(profile: Profile, name: str) -> str | None:
    raw = profile.services[name].process
    return None if raw is None else profile.expand(raw, f"services.{name}.process")
