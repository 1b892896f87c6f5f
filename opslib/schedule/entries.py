"""When runbooks run: `parameters/schedule.yaml`, validated, with each entry's next runs
and the `opslib run` command it stands for. `schedule.cron` writes it for cron,
`schedule.export` for Airflow and Kubernetes CronJobs.

opslib never schedules anything itself (DESIGN.md §6). Every generated run is the command
a person would type, `opslib run RUNBOOK --profile NAME ...`, so a scheduled run and a
manual one lock, archive and exit alike. Only names and the file's own values are written
out: `${VAR}` references are never expanded, so no secret reaches a crontab or a manifest.
"""

from __future__ import annotations

import math
import os
import shlex
import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from opslib import paths
from opslib.errors import OpslibError, ProfileError, RunbookError
from opslib.profiles import Profile
from opslib.profiles.fields import Seconds
from opslib.profiles.loading import is_profile_path, load_profile
from opslib.profiles.yaml_files import describe_validation, parse_yaml, read_text
from opslib.schedule.expression import parse_cron

# Airflow and Kubernetes get a minute more than opslib's own --timeout: the run times itself
# out and archives an UNKNOWN report; the engine's deadline is only the backstop.
ENGINE_GRACE_S = 60


class ScheduleError(OpslibError):
    """The schedule file cannot be read or validated, or a crontab cannot be updated."""


def default_schedule_path() -> Path:
    """`parameters/schedule.yaml`, beside the profiles: the one source of when runbooks run."""
    return paths.profiles_dir().parent / "schedule.yaml"


def _cron_expression(value: Any) -> str:
    """Five fields in the grammar Kubernetes and Debian's cron share, that run on some day:
    the crontab, the CronJobs and the Airflow DAGs all carry the same expression."""
    text = " ".join(str(value).split())
    parse_cron(text)
    return text


def has_control_character(text: str) -> bool:
    """A line break or other control character: it would break a crontab line."""
    return any(ord(char) < 32 or ord(char) == 127 for char in text)


def _word(value: Any) -> str:
    """A name that ends up on a crontab line: text, not empty, on one line."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{value!r} is not a non-empty text")
    if has_control_character(value):
        raise ValueError(f"{value!r} holds a line break or control character")
    return value


def _parameter_value(value: Any) -> bool | int | float | str:
    """One `-p` value: text, a number or true/false, on one line (a crontab line)."""
    if not isinstance(value, bool | int | float | str):
        raise ValueError(f"takes one value (text, number, true or false), got {value!r}")
    if isinstance(value, str) and has_control_character(value):
        raise ValueError(f"{value!r} holds a line break or control character")
    return value


CronExpression = Annotated[str, BeforeValidator(_cron_expression)]
Word = Annotated[str, BeforeValidator(_word)]
ParameterValue = Annotated[bool | int | float | str, BeforeValidator(_parameter_value)]


class Entry(BaseModel):
    """One scheduled run: which runbook on which profile, when, for how long, with what;
    or, with `summary:` instead of a runbook, the profile's period summary sent through
    its channels (`opslib notify summary`), which goes out even when nothing changed."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    runbook: Word | None = None
    summary: Literal["daily", "weekly"] | None = None
    profile: Word
    cron: CronExpression
    timeout: Seconds
    parameters: dict[str, ParameterValue] = Field(default_factory=dict)
    by: Word = "cron"

    @model_validator(mode="after")
    def _one_job(self) -> Entry:
        if (self.runbook is None) == (self.summary is None):
            raise ValueError("an entry runs a runbook or sends a summary: set exactly one")
        if self.summary and self.parameters:
            raise ValueError("a summary takes no parameters")
        return self

    @property
    def job(self) -> str:
        """What the entry runs, for names and messages: the runbook, or `daily-summary`."""
        return self.runbook or f"{self.summary}-summary"

    @property
    def profile_name(self) -> str:
        """The profile as a name: a YAML path counts by its file name."""
        return Path(self.profile).stem if is_profile_path(self.profile) else self.profile

    @property
    def slug(self) -> str:
        """`health-check--ideas`: what the cron lock and log are called, like the runner's."""
        return f"{self.job}--{self.profile_name}"

    @property
    def timeout_text(self) -> str:
        """Seconds as `--timeout` takes them: `240`, not `240.0` or `1e+06`."""
        return str(int(self.timeout)) if self.timeout.is_integer() else repr(self.timeout)

    def opslib_args(self) -> list[str]:
        """The arguments after `opslib`: the run exactly as a person would start it."""
        if self.summary:
            return ["notify", "summary", "--profile", self.profile, "--period", self.summary]
        args = ["run", self.runbook, "--profile", self.profile, "--timeout", self.timeout_text]
        args += ["--by", self.by]
        for key, value in self.parameters.items():
            args += ["-p", f"{key}={parameter_text(value)}"]
        return args


def parameter_text(value: bool | int | float | str) -> str:
    """A parameter as `-p KEY=VALUE` spells it: YAML's `true` is `true`, not Python's `True`."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def shown_path(path: Path) -> str:
    """A path as the generated crontab, DAG and CronJobs name their source: relative to the
    project root, where cron runs."""
    return paths.shown(path, paths.project_root())


def _entry_lines(text: str) -> list[int]:
    """The line each list item starts on, so an error points into the file."""
    try:
        node = yaml.compose(text)
    except yaml.YAMLError:
        return []
    if not isinstance(node, yaml.SequenceNode):
        return []
    return [item.start_mark.line + 1 for item in node.value]


def load_schedule(path: Path | None = None) -> list[Entry]:
    """Read and validate a schedule file; every problem is one `ScheduleError` line naming
    the file and the entry, since cron would otherwise fail silently at 3 AM."""
    path = path or default_schedule_path()
    shown = shown_path(path)
    text = read_text(path, shown, ScheduleError)
    data = parse_yaml(text, shown, ScheduleError)
    if data is None:
        return []
    if not isinstance(data, list):
        raise ScheduleError(f"{shown}: a schedule is a list of entries, got {type(data).__name__}")
    lines = _entry_lines(text)
    entries: list[Entry] = []
    profiles: dict[str, Profile] = {}  # each loaded once: entries share them
    for index, raw in enumerate(data):
        where = f"{shown}: entry {index + 1}" + (f" (line {lines[index]})" if lines else "")
        entry = _validated(raw, where)
        _check_references(entry, profiles, where)
        _check_unique(entry, entries, where)
        entries.append(entry)
    return entries


def _validated(raw: Any, where: str) -> Entry:
    if not isinstance(raw, dict):
        raise ScheduleError(
            f"{where}: an entry is a mapping of runbook, profile, cron and timeout, "
            f"got {type(raw).__name__}"
        )
    try:
        return Entry.model_validate(raw)
    except ValidationError as exc:
        raise ScheduleError(f"{where}: {describe_validation(exc, Entry.model_fields)}") from None


def _profile(entry: Entry, where: str) -> Profile:
    """The entry's profile; a relative path is read from the project root, as cron will."""
    try:
        return load_profile(entry.profile, paths.project_root())
    except ProfileError as exc:
        raise ScheduleError(f"{where}: profile: {exc}") from None


def _check_references(entry: Entry, profiles: dict[str, Profile], where: str) -> None:
    """The runbook, the profile and each parameter exist, and the runbook applies to the
    profile, as `opslib run` will demand. `profiles` keeps the ones loaded so far."""
    if entry.runbook is None:  # a summary: the profile must have channels to send it on
        if entry.profile not in profiles:
            profiles[entry.profile] = _profile(entry, where)
        if profiles[entry.profile].notify is None:
            raise ScheduleError(f"{where}: profile {entry.profile} has no notify channels")
        return
    from opslib.notebooks import (
        declared_parameters,
        find_runbook,
        parse_overrides,
        refuse_unless_applies,
    )

    try:
        notebook = find_runbook(entry.runbook)
    except RunbookError as exc:
        raise ScheduleError(f"{where}: runbook: {exc}") from None
    if entry.profile not in profiles:
        profiles[entry.profile] = _profile(entry, where)
    try:
        refuse_unless_applies(entry.runbook, notebook, profiles[entry.profile])
    except (RunbookError, ProfileError) as exc:
        raise ScheduleError(f"{where}: {exc}") from None
    if not entry.parameters:
        return
    declared = declared_parameters(notebook)
    for key, value in entry.parameters.items():
        try:
            parse_overrides(entry.runbook, [f"{key}={parameter_text(value)}"], declared)
        except RunbookError as exc:
            raise ScheduleError(f"{where}: parameters.{key}: {exc}") from None


def _check_unique(entry: Entry, earlier: list[Entry], where: str) -> None:
    """Locks, logs, DAGs and CronJobs are named after runbook and profile, and `opslib run`
    refuses a second run of the pair anyway: one entry per pair, with one cron expression."""
    for number, other in enumerate(earlier, start=1):
        if other.slug == entry.slug:
            raise ScheduleError(
                f"{where}: {entry.job} on {entry.profile_name} is already scheduled by "
                f"entry {number}; one entry per runbook and profile"
            )


def next_runs(entry: Entry, after: datetime, count: int) -> list[datetime]:
    """The next `count` start times strictly after `after`, naive UTC like every time opslib
    stores; the schedule's cron expressions are read in UTC, and with the reading cron and
    Kubernetes share (croniter's differs: `16-16` as every minute, `*/1` in a day field)."""
    return parse_cron(entry.cron).next_runs(after, count)


def opslib_program() -> str:
    """The `opslib` of the environment running this command, relative to the project when
    it lives there (`.venv/bin/opslib`), so cron runs the very same installation."""
    program = Path(sys.executable).parent / "opslib"
    root = paths.project_root()
    return str(program.relative_to(root)) if program.is_relative_to(root) else str(program)


def location_variables() -> dict[str, str]:
    """`OPSLIB_HOME` and the like, when set: a scheduled run must find the same project,
    data and archive as the person who installed it, and share that archive with the
    same group (OPSLIB_GROUP_ACCESS). They are locations and settings, never secrets."""
    return {name: os.environ[name] for name in SETTINGS if os.environ.get(name)}


# what a scheduled run inherits from the person who installed it
SETTINGS = (*paths.LOCATION_VARIABLES, "OPSLIB_PROMETHEUS_DIR", paths.GROUP_ACCESS_VARIABLE)


def location_assignments() -> list[str]:
    """`location_variables()` as assignments in front of a shell command."""
    return [f"{name}={shlex.quote(value)}" for name, value in location_variables().items()]


def shell_command(entry: Entry) -> str:
    """`opslib run ...` as a shell command from the project folder, every word quoted."""
    return shlex.join([opslib_program(), *entry.opslib_args()])


def engine_deadline_s(entry: Entry) -> int:
    return math.ceil(entry.timeout) + ENGINE_GRACE_S


def write_file(path: Path, text: str) -> Path:
    """Write whole or not at all: cron or an engine may read the file at any moment, and
    under its own user (the file holds no secret)."""
    try:
        return paths.write_atomically(path, text, mode=paths.SHARED_MODE)
    except OSError as exc:
        raise ScheduleError(f"{path}: cannot write ({exc.strerror})") from None
