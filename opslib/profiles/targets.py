"""The targets a profile names: what opslib measures and how long it may wait for each.

Each field of `Targets` is a target kind; `checks/catalogue.yaml` says which checks prove
that a kind answers, and a registry test fails when a kind has none.
"""

from __future__ import annotations

from typing import Any, Literal

from opslib.profiles.fields import Bytes, Regex, Seconds, StrictModel, TimestampFormat


class DatabaseTarget(StrictModel):
    url: str
    # The role the pipeline's workers connect as (default: the URL's user); remedies that
    # end sessions touch only this role's.
    pipeline_role: str | None = None
    connect_timeout: Seconds = 5.0
    statement_timeout: Seconds = 10.0
    lock_timeout: Seconds = 2.0
    # SQLite: the schema baseline `schema_drift` compares with (default: beside the
    # database file, `<file>.schema.json`); the data-integrity runbook records it
    schema_baseline: str | None = None


class LogsTarget(StrictModel):
    """Log globs (rotated `.gz` files included) and how to read their lines."""

    paths: list[str]
    # strptime formats tried after ISO 8601 and syslog (`Nov 23 14:02:11`) at a line's start
    timestamp_formats: list[TimestampFormat] = []
    # a regex marking a request line: the error rate is then errors per request, not per line
    requests: Regex | None = None
    # how the lines are written; auto: each file's own, told from its first lines. plain: a
    # stamp, then a capital level word (the fast path); logfmt; json (pino's numeric levels
    # too); python (logging); logback (log4j too); syslog (RFC 3164); syslog5424; access
    # (nginx/Apache: each line a request, 5xx errors, 429 rate limiting)
    format: Literal[
        "auto", "plain", "logfmt", "json", "python", "logback", "syslog", "syslog5424", "access"
    ] = "auto"


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
    """NVIDIA GPUs read through NVML; `devices` limits them by index (default: all).
    `terminable`: command-line regexes of the processes a GPU cleanup may end to free
    memory (a stray notebook, a render worker); any other holder is left alone."""

    devices: list[int] | None = None
    terminable: list[Regex] = []
    # a `${VAR:-}` reference that switches the target on: empty, the profile has no GPU
    # here (a profile shipped for render hosts and for machines without a GPU)
    enabled: str | None = None


class RedisTarget(StrictModel):
    url: str
    connect_timeout: Seconds = 2.0
    socket_timeout: Seconds = 2.0
    # what the server's memory limit and eviction policy should be (redis_maxmemory); a
    # server without any limit is reported whatever these say
    maxmemory: Bytes | None = None
    maxmemory_policy: str | None = None


class Targets(StrictModel):
    database: DatabaseTarget | None = None
    redis: RedisTarget | None = None
    logs: LogsTarget | None = None
    disks: dict[str, str] = {}
    http: dict[str, HttpEndpoint] = {}
    gpu: GpuTarget | None = None
