"""Profiles: what pipeline to operate, validated, with secrets resolved only at use time.

A profile is `parameters/profiles/<name>.yaml` (or any YAML path). Values may hold
`${VAR}` or `${VAR:-default}` references; they stay unresolved in the model and are
expanded by `Profile.expand` when a probe needs them, so a notebook or a report only
ever sees the profile's *name*.
"""

from __future__ import annotations

import difflib
import os
import re
import urllib.parse
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    StringConstraints,
    ValidationError,
    model_validator,
)

from opslib import paths
from opslib.checks import Threshold
from opslib.errors import ProfileError
from opslib.redact import is_location_variable, mask_url, register_secret
from opslib.status import Status
from opslib.units import Bytes, Regex, Seconds, TimestampFormat

_URL_USERINFO = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://([^/]*)@")
# A default may itself hold one reference: `${SPOTS_DB:-${OPSLIB_DATA_DIR:-data}/spots.db}`.
_REFERENCE = re.compile(
    r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>(?:[^${}]|\$\{[^{}]*\})*))?\}"
)


def _threshold(value: Any) -> str | None:
    if value is None:
        return None
    Threshold.parse(value)
    return str(value)


ThresholdSpec = Annotated[str | None, BeforeValidator(_threshold)]


class StrictModel(BaseModel):
    """Unknown keys are errors: a misspelt key must never be silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class DatabaseTarget(StrictModel):
    url: str
    # The role the pipeline's workers connect as (default: the URL's user); remedies that
    # end sessions touch only this role's.
    pipeline_role: str | None = None
    connect_timeout: Seconds = 5.0
    statement_timeout: Seconds = 10.0
    lock_timeout: Seconds = 2.0


class LogsTarget(StrictModel):
    """Log globs (rotated `.gz` files included) and how to read their lines."""

    paths: list[str]
    # strptime formats tried after ISO 8601 and syslog (`Nov 23 14:02:11`) at a line's start
    timestamp_formats: list[TimestampFormat] = []
    # a regex marking a request line: the error rate is then errors per request, not per line
    requests: Regex | None = None


class HttpEndpoint(StrictModel):
    """A health endpoint: the status it must answer with, within its timeouts, and the
    JSON fields (dotted paths) its body must carry with these values."""

    url: str
    expect_status: int = 200
    connect_timeout: Seconds = 3.0
    read_timeout: Seconds = 10.0
    expect_json: dict[str, Any] = {}
    headers: dict[str, str] = {}  # values may hold ${VAR} references (tokens)


class GpuTarget(StrictModel):
    """NVIDIA GPUs read through NVML; `devices` limits them by index (default: all)."""

    devices: list[int] | None = None


class FileSet(StrictModel):
    """Files a pipeline writes (summaries, exports, configs), matched by a glob."""

    glob: str
    is_json: bool = False  # every file must parse as JSON
    json_schema: str | None = None  # a JSON Schema file every file must satisfy


class RedisTarget(StrictModel):
    url: str
    connect_timeout: Seconds = 2.0
    socket_timeout: Seconds = 2.0


class Targets(StrictModel):
    database: DatabaseTarget | None = None
    redis: RedisTarget | None = None
    logs: LogsTarget | None = None
    disks: dict[str, str] = {}
    http: dict[str, HttpEndpoint] = {}
    gpu: GpuTarget | None = None


class QueueColumns(StrictModel):
    id: str = "id"
    stage: str | None = "stage"
    status: str = "status"
    created_at: str = "created_at"
    started_at: str = "started_at"
    finished_at: str = "finished_at"
    # when a job last made progress: stuck then means no progress for stuck_after
    # (without it, processing for longer than stuck_after since it started)
    updated_at: str | None = None
    cost: str | None = None
    error: str | None = None


class QueueStatuses(StrictModel):
    queued: str = "queued"
    processing: str = "processing"
    completed: str = "completed"
    failed: str = "failed"


class Queue(StrictModel):
    """Which table is the job queue and what its columns and status values are called."""

    table: str
    columns: QueueColumns = QueueColumns()
    statuses: QueueStatuses = QueueStatuses()
    stuck_after: Seconds = 1800.0
    # Redis keys that mirror the queue, by role; `processing` is reconciled with the table.
    redis_keys: dict[str, str] = {}


class Costs(StrictModel):
    """Where spend is recorded per item and category (`pipeline_costs` in the video manual)."""

    table: str
    item: str = "item_id"
    category: str = "category"
    amount: str = "amount_usd"
    at: str = "created_at"


class Halt(StrictModel):
    """The emergency-halt flag workers read before taking a job: a row in a control table."""

    table: str
    key: str = "halt"


# what can be wrong with a workbook pipeline's output, in the order it is looked for
OUTPUT_PROBLEMS = ("missing", "small", "stale", "unreadable", "rows")


class Workbooks(StrictModel):
    """A pipeline of spreadsheet files: input workbooks (a file set) become one output
    workbook each in `outputs`, named by `output_name` from the input's stem, with client
    names mapped through a JSON rules file (another file set)."""

    inputs: str  # the file set of input workbooks
    name_pattern: Regex | None = None  # the naming convention an input's file name follows
    sheets: dict[str, list[str]] = {}  # sheet -> the columns its header row must hold
    client_column: str | None = None  # the column holding client names, in those sheets
    mapping: str | None = None  # the file set of the JSON mapping rules (client -> rules)
    outputs: str  # the folder outputs are written to
    output_name: str = "{stem}_MAPPED.xlsx"
    min_output_size: Bytes = 100_000.0
    output_size_factor: Annotated[float, Field(gt=0)] = 2.0  # expected output vs input size
    reports: str | None = None  # the file set of the reports a batch writes
    # a log line per processed file: groups `file`, `seconds` and optionally `megabytes`
    processing_log: Regex | None = None
    rerun_command: str | None = None  # `{files}` becomes the inputs to process again
    api_key: str | None = None  # ${VAR}: checked to be set, never shown

    @model_validator(mode="after")
    def _usable(self) -> Workbooks:
        if self.processing_log is not None:
            groups = set(re.compile(self.processing_log).groupindex)
            if not {"file", "seconds"} <= groups:
                raise ValueError(
                    "processing_log needs the named groups (?P<file>...) and (?P<seconds>...)"
                )
        for key in ("output_name", "rerun_command"):
            template = getattr(self, key)
            try:
                template is None or template.format(stem="x", files="x")
            except (KeyError, IndexError, ValueError) as exc:
                raise ValueError(
                    f"{key}: only {{stem}} (output_name) or {{files}} (rerun_command) may be "
                    f"filled in ({type(exc).__name__}: {exc})"
                ) from None
        return self


class Breaker(StrictModel):
    """Where the circuit breaker that stops spending keeps its state: a row of a key/value
    control table whose value is closed, open or half-open."""

    table: str
    key: str = "circuit_breaker"


class Budget(StrictModel):
    """Allocations per category and period (a table with one row per category and
    period), read against the spend in `costs`. The manual's alert levels are the
    `budget_usage` check's thresholds (warning 80 %, critical 100 %); between them,
    `throttle_at` is its CRITICAL state, when non-critical work should be throttled."""

    table: str
    category: str = "category"
    allocated: str = "allocated_usd"
    period_start: str = "period_start"
    period_end: str = "period_end"
    throttle_at: Annotated[float, Field(gt=0)] = 95.0  # percent
    # an item is an outlier when it cost this many times its category's median item
    outlier_factor: Annotated[float, Field(gt=1)] = 3.0
    breaker: Breaker | None = None


def _severity_condition(value: str) -> str:
    check, equals, status = value.partition("=")
    if not equals or not check.strip() or status.strip() not in Status.__members__:
        raise ValueError(
            f"{value!r} is not CHECK=STATUS (a check name or glob, then one of "
            f"{', '.join(Status.__members__)})"
        )
    return value


SeverityCondition = Annotated[str, BeforeValidator(_severity_condition)]


class Duration(StrictModel):
    """How long one run of something (a stage, a cycle) should take, and where its actual
    durations are written: a log line whose regex group `seconds` or `minutes` holds one
    run's time, or a numeric field of a file set's JSON files (in `unit`)."""

    expected: Seconds
    log: Regex | None = None
    file_set: str | None = None
    field: str | None = None
    unit: Literal["s", "min", "h"] = "s"


class SmtpChannel(StrictModel):
    host: str
    port: int = 25
    starttls: bool = False
    username: str | None = None  # ${VAR}: credentials come from the environment
    password: str | None = None
    sender: str
    to: list[str]
    timeout: Seconds = 10.0


class WebhookChannel(StrictModel):
    url: str  # ${VAR}: a Slack-style incoming webhook URL is a secret
    timeout: Seconds = 10.0


class Channel(StrictModel):
    """Where a notification goes: one of an SMTP server, a webhook, or a command that
    gets the message on its standard input."""

    smtp: SmtpChannel | None = None
    webhook: WebhookChannel | None = None
    command: list[str] | None = None
    timeout: Seconds = 30.0  # for the command

    @model_validator(mode="after")
    def _exactly_one(self) -> Channel:
        kinds = [kind for kind in ("smtp", "webhook", "command") if getattr(self, kind)]
        if len(kinds) != 1:
            raise ValueError(
                f"a channel is one of smtp, webhook or command (got {kinds or 'none'})"
            )
        return self


class Window(StrictModel):
    """A maintenance window: no notification is sent inside it (reports still are)."""

    start: datetime
    end: datetime
    reason: str = ""

    @model_validator(mode="after")
    def _utc(self) -> Window:
        """Times with a zone become naive UTC, the way opslib compares every time."""
        for key in ("start", "end"):
            moment = getattr(self, key)
            if moment.tzinfo is not None:
                object.__setattr__(self, key, moment.astimezone(UTC).replace(tzinfo=None))
        if self.end <= self.start:
            raise ValueError("a maintenance window ends after it starts")
        return self


class Notify(StrictModel):
    """When and where a runbook's results are sent: on a change of (hard) state and on
    recovery; a state is hard after `hard_after` consecutive results; a CRITICAL is
    repeated every `repeat_critical` while it lasts."""

    channels: dict[str, Channel]
    hard_after: Annotated[int, Field(ge=1)] = 1
    repeat_critical: Seconds | None = None
    maintenance: list[Window] = []


class Backups(StrictModel):
    """Where database dumps go, how many of each retention class to keep, and which tables
    a restore must reproduce exactly."""

    dir: str
    hourly: int = 24
    daily: int = 7
    weekly: int = 4
    key_tables: list[str] = []
    timeout: Seconds = 1800.0


class Stage(StrictModel):
    """One stage of a pipeline that fills columns of a shared table in turn."""

    column: str  # set on a row once this stage has handled it
    process: str | None = None  # regex found in the stage process's command line
    log: str | None = None  # the stage's log file; one that stops growing is a sign of a hang
    progress_column: str | None = None  # when the stage last wrote a row (a timestamp)


class Stages(StrictModel):
    """The stages that work through `table`, in pipeline order, and when a running stage
    process counts as stuck: older than `stuck_after` and idle by CPU, log or rows."""

    table: str
    steps: dict[str, Stage]
    stuck_after: Seconds = 300.0
    idle_cpu_percent: float = 1.0
    silent_after: Seconds = 600.0
    cpu_window: Seconds = 2.0


class FormatRule(StrictModel):
    """Values of `table.column` must match `pattern` (a regular expression)."""

    table: str
    column: str
    pattern: Regex
    key: str | None = None  # a column that identifies a row, for the sample of offenders


class Processes(StrictModel):
    """Processes besides the pipeline's stages, by command-line regex: `readers` compete
    for the database; only processes matching `terminable` may ever be signalled."""

    readers: list[Regex] = []
    terminable: list[Regex] = []
    # name -> regex of a process that must be running (a scheduler, a worker)
    required: dict[str, Regex] = {}


class CheckSettings(StrictModel):
    enabled: bool = True
    warning: ThresholdSpec = None
    critical: ThresholdSpec = None


class Profile(StrictModel):
    # The name goes into report file names and lock names: no path separators.
    name: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]
    description: str = ""
    targets: Targets = Targets()
    queue: Queue | None = None
    checks: dict[str, CheckSettings] = {}
    # name -> a read-only SQL query returning the rows that break the rule (none is healthy)
    invariants: dict[str, str] = {}
    costs: Costs | None = None
    backups: Backups | None = None
    halt: Halt | None = None
    stages: Stages | None = None
    # name -> a validation rule on one column's values
    formats: dict[str, FormatRule] = {}
    processes: Processes = Processes()
    # name -> a read-only query whose time the query-benchmark runbook measures
    benchmarks: dict[str, str] = {}
    # name -> a set of files the pipeline writes, checked for age, size and JSON validity
    files: dict[str, FileSet] = {}
    # name -> how long a run should take and where its durations are recorded
    durations: dict[str, Duration] = {}
    notify: Notify | None = None
    budget: Budget | None = None
    workbooks: Workbooks | None = None
    # incident level -> conditions `check=STATUS`; the first level with a match is the run's
    severity: dict[Literal["P1", "P2", "P3", "P4"], list[SeverityCondition]] = {}

    _source: Path | None = PrivateAttr(default=None)

    @property
    def source(self) -> str:
        """Where the profile came from, for error messages."""
        return f"profile {self.name}" if self._source is None else _display_path(self._source)

    @property
    def path(self) -> Path | None:
        """The file the profile was loaded from (None for one built in code)."""
        return self._source

    @property
    def reference(self) -> str:
        """How a notebook should ask for this profile: its name if it lives in
        parameters/profiles/, else its absolute path (the kernel's cwd may differ)."""
        if self._source is None or self._source.parent == paths.profiles_dir().resolve():
            return self.name
        return str(self._source)

    def expand(self, raw: str, key: str, *, url: bool = False) -> str:
        """`raw` with its `${VAR}` references resolved from the environment now.

        A missing variable without a default is a one-line error naming the key; resolved
        values are registered as secrets unless the variable names a location. In a URL,
        a variable inside the user:password part is percent-encoded, so `p@ss/word`
        cannot be misread as a host.
        """
        userinfo = _URL_USERINFO.match(raw) if url else None
        credentials = userinfo.span(1) if userinfo else (0, 0)

        def replace(match: re.Match[str]) -> str:
            encode = credentials[0] <= match.start() < credentials[1]
            name, default = match.group("name"), match.group("default")
            value = os.environ.get(name)
            if value is None:
                if default is None:
                    raise ProfileError(
                        f"{self.source}: {key}: environment variable {name} is not set"
                    )
                value = _REFERENCE.sub(replace, default)
            elif not is_location_variable(name):
                register_secret(value, name=name)
            return urllib.parse.quote(value, safe="") if encode else value

        return _REFERENCE.sub(replace, raw)

    def references(self) -> Iterator[tuple[str, str]]:
        """Every (key path, raw string) in the profile that holds a `${VAR}` reference."""
        yield from _walk_references(self.model_dump(), "")

    def resolve_all(self) -> None:
        """Expand every reference once: fails early on a missing variable and registers
        every secret, so the runner can scrub them from whatever a run produces."""
        for key, raw in self.references():
            self.expand(raw, key)

    def database_url(self) -> str:
        """The database URL resolved for use; relative SQLite paths from the project root."""
        if self.targets.database is None:
            raise ProfileError(f"{self.source}: targets.database is not set")
        url = self.expand(self.targets.database.url, "targets.database.url", url=True)
        prefix, _, rest = url.partition(":///")
        if prefix.startswith("sqlite") and rest and not rest.startswith("/"):
            url = f"{prefix}:///{paths.resolve_path(rest)}"
        return url

    def pipeline_role(self) -> str:
        """The role whose sessions remedies may end: configured, else the URL's user."""
        if self.targets.database is not None and self.targets.database.pipeline_role:
            return self.targets.database.pipeline_role
        return sa_url_user(self.database_url())

    def backup_dir(self) -> Path:
        if self.backups is None:
            raise ProfileError(f"{self.source}: backups is not set")
        return paths.resolve_path(self.expand(self.backups.dir, "backups.dir"))

    def redis_url(self) -> str:
        if self.targets.redis is None:
            raise ProfileError(f"{self.source}: targets.redis is not set")
        return self.expand(self.targets.redis.url, "targets.redis.url", url=True)

    def database_display(self) -> str:
        """The database URL as a report may show it: password masked."""
        return mask_url(self.database_url())

    def log_globs(self) -> list[str]:
        if self.targets.logs is None:
            return []
        return [
            str(paths.resolve_path(self.expand(raw, f"targets.logs.paths[{i}]")))
            for i, raw in enumerate(self.targets.logs.paths)
        ]

    def disk_paths(self) -> dict[str, Path]:
        return {
            label: paths.resolve_path(self.expand(raw, f"targets.disks.{label}"))
            for label, raw in self.targets.disks.items()
        }

    def provides(self, need: str) -> bool:
        """Whether the profile has what a check or an action needs (see `NEEDS`)."""
        try:
            return NEEDS[need](self)
        except KeyError:
            raise ValueError(f"unknown need {need!r} (known: {', '.join(NEEDS)})") from None

    def check_settings(self, check: str, label: str = "") -> CheckSettings:
        """Settings for one check, or for one labelled result of it: `checks:` may hold
        `stage_coverage[business_rules]` next to `stage_coverage`, which it overrides."""
        general = self.checks.get(check, CheckSettings())
        specific = self.checks.get(f"{check}[{label}]") if label else None
        if specific is None:
            return general
        return specific.model_copy(
            update={
                "warning": specific.warning or general.warning,
                "critical": specific.critical or general.critical,
            }
        )

    def database_path(self) -> Path:
        """The SQLite database file (only for a SQLite profile)."""
        from sqlalchemy.engine import make_url

        return Path(make_url(self.database_url()).database or "")

    def key_tables(self) -> list[str]:
        """The tables whose size is worth watching: the queue, the stages table, the costs
        table and the backups' key tables, each once."""
        named = [
            self.queue.table if self.queue else None,
            self.stages.table if self.stages else None,
            self.costs.table if self.costs else None,
            *(self.backups.key_tables if self.backups else []),
        ]
        return list(dict.fromkeys(table for table in named if table))

    def file_glob(self, name: str) -> str:
        """The resolved glob of the file set `name`."""
        return str(paths.resolve_path(self.expand(self.files[name].glob, f"files.{name}.glob")))

    def output_folder(self) -> Path:
        """Where the workbook pipeline writes its outputs, resolved."""
        return paths.resolve_path(self.expand(self.workbooks.outputs, "workbooks.outputs"))

    def stage_log(self, stage: str) -> Path | None:
        """The stage's log file, resolved, if the profile names one."""
        raw = self.stages.steps[stage].log if self.stages else None
        return (
            None
            if raw is None
            else paths.resolve_path(self.expand(raw, f"stages.steps.{stage}.log"))
        )


def _has_database(profile: Profile) -> bool:
    """A database target whose URL is set: `url: ${CATALOG_DSN:-}` makes it optional."""
    return profile.targets.database is not None and profile.database_url() != ""


def _database_is(profile: Profile, backend: str) -> bool:
    return _has_database(profile) and profile.database_url().startswith(backend)


def _has_queue(profile: Profile) -> bool:
    return profile.queue is not None and _has_database(profile)


def _has_in_database(section: str) -> Callable[[Profile], bool]:
    return lambda profile: bool(getattr(profile, section)) and _has_database(profile)


# What a check (`needs:` in catalogue.yaml) or an action (`needs`) can require of a
# profile; a step whose need is not met is skipped, saying which.
NEEDS: dict[str, Callable[[Profile], bool]] = {
    "database": _has_database,
    "logs": lambda profile: profile.targets.logs is not None,
    "disks": lambda profile: bool(profile.targets.disks),
    "redis": lambda profile: profile.targets.redis is not None,
    "sqlite": lambda profile: _database_is(profile, "sqlite"),
    "postgres": lambda profile: _database_is(profile, "postgres"),
    "queue": _has_queue,
    "postgres_queue": lambda profile: _has_queue(profile) and _database_is(profile, "postgres"),
    "redis_queue": lambda profile: (
        _has_queue(profile) and profile.targets.redis is not None and bool(profile.queue.redis_keys)
    ),
    "item_costs": lambda profile: _has_queue(profile) and profile.queue.columns.cost is not None,
    "invariants": _has_in_database("invariants"),
    "costs": _has_in_database("costs"),
    "halt": _has_in_database("halt"),
    "backups": _has_in_database("backups"),
    "postgres_backups": lambda profile: (
        profile.backups is not None and _database_is(profile, "postgres")
    ),
    "sqlite_backups": lambda profile: (
        profile.backups is not None and _database_is(profile, "sqlite")
    ),
    "stages": _has_in_database("stages"),
    "formats": _has_in_database("formats"),
    "http": lambda profile: bool(profile.targets.http),
    "gpu": lambda profile: profile.targets.gpu is not None,
    "files": lambda profile: bool(profile.files),
    "host": lambda profile: True,  # the machine opslib runs on
    "durations": lambda profile: bool(profile.durations),
    "tables": lambda profile: _has_database(profile) and bool(profile.key_tables()),
    "required_processes": lambda profile: bool(profile.processes.required),
    "benchmarks": _has_in_database("benchmarks"),
    "workbooks": lambda profile: profile.workbooks is not None,
    "processing_log": lambda profile: (
        profile.workbooks is not None
        and profile.workbooks.processing_log is not None
        and profile.targets.logs is not None
    ),
    "budget": lambda profile: profile.budget is not None and _has_in_database("costs")(profile),
    "breaker": lambda profile: (
        profile.budget is not None and profile.budget.breaker is not None and _has_database(profile)
    ),
}


def _walk_references(node: Any, key: str) -> Iterator[tuple[str, str]]:
    if isinstance(node, dict):
        for child_key, child in node.items():
            yield from _walk_references(child, f"{key}.{child_key}" if key else str(child_key))
    elif isinstance(node, list):
        for index, child in enumerate(node):
            yield from _walk_references(child, f"{key}[{index}]")
    elif isinstance(node, str) and _REFERENCE.search(node):
        yield key, node


def _display_path(path: Path) -> str:
    try:
        return str(path.relative_to(paths.project_root()))
    except ValueError:
        return str(path)


def available_profiles() -> list[str]:
    return sorted(p.stem for p in paths.profiles_dir().glob("*.yaml"))


def default_profile_name() -> str:
    return os.environ.get("OPSLIB_PROFILE") or "demo"


def _locate(name_or_path: str) -> Path:
    if name_or_path.endswith((".yaml", ".yml")) or os.sep in name_or_path:
        path = Path(name_or_path).expanduser().resolve()
        if not path.is_file():
            raise ProfileError(f"profile file {name_or_path} does not exist")
        return path
    path = paths.profiles_dir() / f"{name_or_path}.yaml"
    if not path.is_file():
        known = available_profiles()
        close = difflib.get_close_matches(name_or_path, known, n=3)
        hint = f"did you mean {', '.join(close)}?" if close else f"known: {', '.join(known)}"
        raise ProfileError(f"no profile named {name_or_path!r} in parameters/profiles/ ({hint})")
    return path


def _describe(error: dict[str, Any]) -> str:
    key = ".".join(str(part) for part in error["loc"])
    if error["type"] == "extra_forbidden":
        return f"unknown key {key!r}"
    if error["type"] == "missing":
        return f"missing key {key!r}"
    message = error["msg"].removeprefix("Value error, ")
    return f"{key}: {message}"


def load_profile(name_or_path: str | None = None) -> Profile:
    """Load and validate a profile by name (`parameters/profiles/NAME.yaml`) or path.

    Every problem is a `ProfileError` whose message names the file and the key.
    """
    from opslib.catalogue import check_names

    path = _locate(name_or_path or default_profile_name())
    shown = _display_path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "not valid YAML"
        raise ProfileError(f"{shown}:{where}: {problem}") from None
    except OSError as exc:
        raise ProfileError(f"{shown}: cannot read ({exc.strerror})") from None
    if not isinstance(data, dict):
        raise ProfileError(f"{shown}: a profile is a mapping of keys, got {type(data).__name__}")
    data.setdefault("name", path.stem)
    try:
        profile = Profile.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(_describe(error) for error in exc.errors())
        raise ProfileError(f"{shown}: {problems}") from None
    unknown = sorted({key.partition("[")[0] for key in profile.checks} - set(check_names()))
    if unknown:
        raise ProfileError(
            f"{shown}: unknown check {', '.join(f'checks.{n}' for n in unknown)} "
            f"(known: {', '.join(check_names())})"
        )
    unnamed = sorted(
        f"severity.{level}: {condition}"
        for level, conditions in profile.severity.items()
        for condition in conditions
        if not any(char in (check := condition.partition("=")[0].strip()) for char in "*?")
        and not check.startswith("action:")
        and (
            check.partition("[")[0] not in check_names()
            or (
                "[" in check
                and (known := _labels(profile, check.partition("[")[0])) is not None
                and check.partition("[")[2].rstrip("]") not in known
            )
        )
    )
    if unnamed:
        raise ProfileError(f"{shown}: no such check in {'; '.join(unnamed)}")
    if profile.workbooks is not None:
        sets = profile.workbooks
        missing = [
            f"workbooks.{key}: {name}"
            for key, name in (
                ("inputs", sets.inputs),
                ("mapping", sets.mapping),
                ("reports", sets.reports),
            )
            if name is not None and name not in profile.files
        ]
        if missing:
            raise ProfileError(
                f"{shown}: no such file set under files: {'; '.join(missing)} "
                f"(known: {', '.join(profile.files) or 'none'})"
            )
    mislabelled = [
        f"checks.{key} (known: {', '.join(sorted(known)) or 'none'})"
        for key in profile.checks
        if "[" in key
        and (known := _labels(profile, key.partition("[")[0])) is not None
        and key.partition("[")[2].rstrip("]") not in known
    ]
    if mislabelled:
        raise ProfileError(
            f"{shown}: no such result to set thresholds for: {'; '.join(mislabelled)}"
        )
    profile._source = path.resolve()
    return profile


def _labels(profile: Profile, check: str) -> set[str] | None:
    """The labels a check's results carry, where the profile itself names them (None:
    the check's labels come from the target, so a typo cannot be caught here)."""
    named = {
        "stage_coverage": profile.stages.steps if profile.stages else {},
        "format_violations": profile.formats,
        "query_time": profile.benchmarks,
        "invariant": profile.invariants,
        "disk_free": profile.targets.disks,
        "http_endpoint": profile.targets.http,
        "process_running": profile.processes.required,
        "duration_ratio": profile.durations,
        "file_problems": profile.files,
        "file_age": profile.files,
        "file_growth": profile.files,
        "output_files": OUTPUT_PROBLEMS,
    }
    return set(named[check]) if check in named else None


def sa_url_user(url: str) -> str:
    """The user named in a database URL ('' when none)."""
    from sqlalchemy.engine import make_url

    return make_url(url).username or ""
