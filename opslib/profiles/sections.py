"""The pipeline a profile describes, section by section: its queue table, costs and
budget, backups, stages, formats, processes, files, durations and workbooks, and the
check settings that override the catalogue's thresholds."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, model_validator

from opslib.profiles.fields import Bytes, Regex, Seconds, StrictModel, ThresholdSpec


class FileSet(StrictModel):
    """Files a pipeline writes (summaries, exports, configs), matched by a glob."""

    glob: str
    is_json: bool = False  # every file must parse as JSON
    json_schema: str | None = None  # a JSON Schema file every file must satisfy


class QueueColumns(StrictModel):
    """The queue's columns by role. A role set to null is not stored: without `status`
    a job's state follows from its timestamps (and `error` or `failed_at`); without
    `finished_at` (jobs deleted when done) nothing can be counted after the fact."""

    id: str = "id"
    stage: str | None = "stage"
    status: str | None = "status"
    created_at: str | None = "created_at"
    started_at: str = "started_at"
    finished_at: str | None = "finished_at"
    # when a failed job ended, where the table records it apart from finished_at (Oban's
    # discarded_at): failures that leave finished_at empty are counted by it
    failed_at: str | None = None
    # when a job last made progress: stuck then means no progress for stuck_after
    # (without it, processing for longer than stuck_after since it started)
    updated_at: str | None = None
    cost: str | None = None
    error: str | None = None


def _values(value: Any) -> Any:
    return [value] if isinstance(value, str | int) and not isinstance(value, bool) else value


# the values of a status column that mean one state: a word, a code, or several of them
StatusValues = Annotated[list[str | int], BeforeValidator(_values), Field(min_length=1)]


class QueueStatuses(StrictModel):
    """Which values of the status column mean each state (`queued: [available,
    scheduled, retryable]`, integer codes as they are). A reset writes the first queued
    value."""

    queued: StatusValues = ["queued"]
    processing: StatusValues = ["processing"]
    completed: StatusValues = ["completed"]
    failed: StatusValues = ["failed"]


class Queue(StrictModel):
    """Where the job queue is and how it is stored: a table (`schema.table` where it has
    a schema) with its columns and status values, or a read-only `query` whose columns
    are named by the roles in `columns` (for a queue spread over several tables). Times
    are stored as `timestamps` says (`auto`: as a sample of each column shows)."""

    table: str | None = None
    query: str | None = None
    columns: QueueColumns = QueueColumns()
    statuses: QueueStatuses = QueueStatuses()
    timestamps: Literal["auto", "native", "iso", "epoch_s", "epoch_ms", "epoch_us", "epoch_ns"] = (
        "auto"
    )
    stuck_after: Seconds = 1800.0
    # Redis keys that mirror the queue, by role; `processing` is reconciled with the table.
    redis_keys: dict[str, str] = {}

    @model_validator(mode="after")
    def _one_source(self) -> Queue:
        if (self.table is None) == (self.query is None):
            raise ValueError("a queue is a table or a query: set exactly one of them")
        return self

    @property
    def source(self) -> str:
        """The queue's table, or `query` for a queue given as one (for messages)."""
        return self.table or "query"


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
    # an input over it is flagged for the large-file procedure (split by platform)
    large_input: Bytes = 100_000_000.0
    output_size_factor: Annotated[float, Field(gt=0)] = 2.0  # expected output vs input size
    reports: str | None = None  # the file set of the reports a batch writes
    # a log line per processed file: groups `file`, `seconds` and optionally `megabytes`
    processing_log: Regex | None = None
    rerun_command: str | None = None  # `{files}` becomes the inputs to process again
    api_key: str | None = None  # ${VAR}: checked to be set, never shown
    # the log whose last lines must say the run completed (a file set), and that line
    completion_log: str | None = None
    completion_line: Regex | None = None
    # the reach and frequency sheets (a name glob, e.g. "*_RF"): each row names its metric
    # in `reach_names` and holds a reach above zero in `reach_values`
    reach_sheets: str | None = None
    reach_names: str = "PLATFORM"
    reach_values: str = "UNIQUES_REACH"

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
    # the column naming a cycle (its rows share one value, part of the key), if the table
    # has one; a new cycle gets `cycle_name` formatted with its start and end
    cycle: str | None = None
    cycle_name: str = "cycle-{start:%Y%m%d}"


class Duration(StrictModel):
    """How long one run of something (a stage, a cycle) should take, and where its actual
    durations are written: a log line whose regex group `seconds` or `minutes` holds one
    run's time, or a numeric field of a file set's JSON files (in `unit`). With `per`, the
    expected time is for `per` items, scaled by the count that `count_log` (a log regex
    with a group `count`) last gave before the run ended: 10 min per 100,000 spots."""

    expected: Seconds
    log: Regex | None = None
    per: Annotated[int, Field(gt=0)] | None = None
    count_log: Regex | None = None
    file_set: str | None = None
    field: str | None = None
    unit: Literal["s", "min", "h"] = "s"


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
    # name -> TCP port it listens on (datasette: 8001); the `tcp_listener` check names the
    # process listening there, and the profile's thresholds say whether one should be
    listeners: dict[str, Annotated[int, Field(ge=1, le=65535)]] = {}


class Cleanup(StrictModel):
    """Old files to remove from one folder (`${VAR}` allowed): those matching `pattern`
    (a glob relative to it) last modified more than `older_than` ago, except the
    `keep_newest` newest of them, deleted or gzipped into `archive_to` (default: beside
    themselves). Nothing outside the folder is touched, through a symlink or otherwise."""

    path: str
    pattern: str = "*"
    older_than: Seconds
    keep_newest: Annotated[int, Field(ge=0)] = 0
    mode: Literal["delete", "archive"] = "delete"
    archive_to: str | None = None

    @model_validator(mode="after")
    def _archive_only(self) -> Cleanup:
        if self.archive_to is not None and self.mode != "archive":
            raise ValueError("archive_to is only read with mode: archive")
        if ".." in self.pattern.replace("\\", "/").split("/"):
            raise ValueError(f"pattern {self.pattern!r} leaves the folder: no '..' in it")
        return self


class CheckSettings(StrictModel):
    enabled: bool = True
    warning: ThresholdSpec = None
    critical: ThresholdSpec = None
