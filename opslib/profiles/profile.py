"""A profile: one pipeline to operate, validated, with its secrets resolved only at use.

The model holds the profile as written (`${VAR}` references unresolved); the accessors
resolve what a probe asks for, when it asks, so a notebook or a report only ever sees the
profile's *name*.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Literal

from pydantic import PrivateAttr, StringConstraints, model_validator

from opslib import paths
from opslib.errors import ProfileError
from opslib.profiles import needs, secrets, urls
from opslib.profiles.channels import Notify
from opslib.profiles.fields import SeverityCondition, StrictModel
from opslib.profiles.manual import Manual
from opslib.profiles.sections import (
    Backups,
    Budget,
    CheckSettings,
    Cleanup,
    Costs,
    Duration,
    FileSet,
    FormatRule,
    Halt,
    Processes,
    Queue,
    Stages,
    Workbooks,
)
from opslib.profiles.services import Service, ServiceName, check_endpoints
from opslib.profiles.targets import Targets


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
    # name -> a read-only query returning one number the manual reads (a count, a revenue)
    kpis: dict[str, str] = {}
    # name -> a set of files the pipeline writes, checked for age, size and JSON validity
    files: dict[str, FileSet] = {}
    # name -> how long a run should take and where its durations are recorded
    durations: dict[str, Duration] = {}
    notify: Notify | None = None
    budget: Budget | None = None
    workbooks: Workbooks | None = None
    # name -> a service of the pipeline, in start order (see `profiles.services`)
    services: dict[ServiceName, Service] = {}
    # name -> old files to delete or archive (temporary media, outputs, config backups)
    cleanups: dict[str, Cleanup] = {}
    # incident level -> conditions `check=STATUS`; the first level with a match is the run's
    severity: dict[Literal["P1", "P2", "P3", "P4"], list[SeverityCondition]] = {}
    # the operations manual this profile carries out: its symptoms and quick commands
    manual: Manual | None = None

    _source: Path | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _services_name_known_endpoints(self) -> Profile:
        check_endpoints(self.services, self.targets.http)
        return self

    @property
    def source(self) -> str:
        """Where the profile came from, for error messages."""
        if self._source is None:
            return f"profile {self.name}"
        return paths.shown(self._source, paths.project_root())

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
        """`raw` with its `${VAR}` references resolved from the environment now; a
        missing variable is a one-line error naming the key (see `secrets.expand`)."""
        return secrets.expand(raw, self._where(key), url=url)

    def _where(self, key: str) -> str:
        """How an error names a key of this profile: `parameters/profiles/x.yaml: key`."""
        return f"{self.source}: {key}"

    def references(self) -> Iterator[tuple[str, str]]:
        """Every (key path, raw string) in the profile that holds a `${VAR}` reference."""
        yield from secrets.references(self.model_dump())

    def resolve_all(self) -> None:
        """Expand every reference once: fails early on a missing variable or a target URL
        no driver can read, and registers every secret (a literal URL's password too), so
        the runner can scrub them from whatever a run produces."""
        for key, raw in self.references():
            self.expand(raw, key)
        if self.targets.database is not None:
            self.database_url()
        if self.targets.redis is not None:
            self.redis_url()

    def database_url(self) -> str:
        """The database URL resolved for use; relative SQLite paths from the project root."""
        if self.targets.database is None:
            raise ProfileError(f"{self.source}: targets.database is not set")
        url = self.expand(self.targets.database.url, "targets.database.url", url=True)
        urls.check_database_url(url, self._where("targets.database.url"))
        if url.startswith("postgres") and self.targets.database.connect_timeout < 2:
            # libpq (and psycopg after it) waits 2 s for anything shorter: say so, rather
            # than promise a bound the client will not keep
            raise ProfileError(
                f"{self._where('targets.database.connect_timeout')}: PostgreSQL's client "
                "waits at least 2 s for a connection; write 2 s or more"
            )
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
        url = self.expand(self.targets.redis.url, "targets.redis.url", url=True)
        urls.check_redis_url(url, self._where("targets.redis.url"))
        return url

    def database_display(self) -> str:
        """The database URL as a report may show it: password masked."""
        return secrets.mask_url(self.database_url())

    def describe_targets(self) -> list[str]:
        """Each target the profile names, one line each, as a report header lists them:
        where it is (passwords masked) or what it holds. A kind this method has no words
        for is still listed, by its name."""
        lines = []
        for kind in Targets.model_fields:
            if not self.provides(kind):
                continue
            section = getattr(self.targets, kind)
            if kind == "database":
                lines.append(f"database {self.database_display()}")
            elif kind == "logs":
                lines += [f"logs {pattern}" for pattern in self.log_globs()]
            elif hasattr(section, "url"):
                url = self.expand(section.url, f"targets.{kind}.url", url=True)
                lines.append(f"{kind} {secrets.mask_url(url)}")
            elif isinstance(section, dict):
                lines.append(f"{kind}: {', '.join(section)}")
            else:
                lines.append(kind)
        return lines

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
        return needs.provides(self, need)

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


def sa_url_user(url: str) -> str:
    """The user named in a database URL ('' when none)."""
    from sqlalchemy.engine import make_url

    return make_url(url).username or ""
