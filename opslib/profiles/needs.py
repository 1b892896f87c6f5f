"""What a check or an action can require of a profile (`needs:` in the catalogue), and
whether a profile has it. A step whose need is not met is skipped, saying which."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from opslib.profiles.profile import Profile


def _has_database(profile: Profile) -> bool:
    """A database target whose URL is set: `url: ${CATALOG_DSN:-}` makes it optional."""
    return profile.targets.database is not None and profile.database_url() != ""


def _database_is(profile: Profile, backend: str) -> bool:
    return _has_database(profile) and profile.database_url().startswith(backend)


def _has_queue(profile: Profile) -> bool:
    return profile.queue is not None and _has_database(profile)


def _has_in_database(section: str) -> Callable[[Profile], bool]:
    return lambda profile: bool(getattr(profile, section)) and _has_database(profile)


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


def provides(profile: Profile, need: str) -> bool:
    """Whether the profile has what a check or an action needs."""
    try:
        return NEEDS[need](profile)
    except KeyError:
        raise ValueError(f"unknown need {need!r} (known: {', '.join(NEEDS)})") from None
