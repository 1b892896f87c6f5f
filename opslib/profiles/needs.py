"""What a check or an action can require of a profile (`needs:` in the catalogue), and
whether a profile has it. A step whose need is not met is skipped, saying which.

Every target kind (each field of `Targets`) is a need by itself, met when the profile
names that target; a new kind needs nothing here. `DERIVED` lists the needs made of
several parts (a queue is a table in a database; a budget needs its costs).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from opslib.profiles.services import enabled_services
from opslib.profiles.targets import Targets

if TYPE_CHECKING:
    from opslib.profiles.profile import Profile


def switched_off(profile: Profile, url: str, key: str) -> bool:
    """Whether a URL resolves to nothing (`url: ${CATALOG_DSN:-}`), which turns off the
    target or notification channel it addresses: a shipped profile names it, the
    environment turns it on. (A variable without a default that is not set is an error.)"""
    return profile.expand(url, key, url=True) == ""


def has_target(profile: Profile, kind: str) -> bool:
    """Whether the profile names a target of this kind: its section set and not empty,
    and its URL, if it has one, not `switched_off`."""
    section = getattr(profile.targets, kind)
    if not section:
        return False
    enabled = getattr(section, "enabled", None)  # `enabled: ${VIDEO_GPU:-}`: empty is off
    if enabled is not None and not profile.expand(enabled, f"targets.{kind}.enabled").strip():
        return False
    if isinstance(section, dict):  # endpoints by name (http): on while one resolves
        return any(
            getattr(item, "url", None) is None
            or not switched_off(profile, item.url, f"targets.{kind}.{name}.url")
            for name, item in section.items()
        )
    url = getattr(section, "url", None)
    return url is None or not switched_off(profile, url, f"targets.{kind}.url")


def _has_database(profile: Profile) -> bool:
    return has_target(profile, "database")


def _database_is(profile: Profile, backend: str) -> bool:
    return _has_database(profile) and profile.database_url().startswith(backend)


def _has_queue(profile: Profile) -> bool:
    return profile.queue is not None and _has_database(profile)


def _has_in_database(section: str) -> Callable[[Profile], bool]:
    return lambda profile: bool(getattr(profile, section)) and _has_database(profile)


DERIVED: dict[str, Callable[[Profile], bool]] = {
    "sqlite": lambda profile: _database_is(profile, "sqlite"),
    "postgres": lambda profile: _database_is(profile, "postgres"),
    "queue": _has_queue,
    "postgres_queue": lambda profile: _has_queue(profile) and _database_is(profile, "postgres"),
    "redis_queue": lambda profile: (
        _has_queue(profile) and has_target(profile, "redis") and bool(profile.queue.redis_keys)
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
    "redis_backups": lambda profile: profile.backups is not None and has_target(profile, "redis"),
    "stages": _has_in_database("stages"),
    "formats": _has_in_database("formats"),
    "files": lambda profile: bool(profile.files),
    "cleanups": lambda profile: bool(profile.cleanups),
    "host": lambda profile: True,  # the machine opslib runs on
    "durations": lambda profile: bool(profile.durations),
    "tables": lambda profile: _has_database(profile) and bool(profile.key_tables()),
    "required_processes": lambda profile: bool(profile.processes.required),
    "services": lambda profile: bool(enabled_services(profile)),
    "listeners": lambda profile: bool(profile.processes.listeners),
    "benchmarks": _has_in_database("benchmarks"),
    "kpis": _has_in_database("kpis"),
    "workbooks": lambda profile: profile.workbooks is not None,
    "processing_log": lambda profile: (
        profile.workbooks is not None
        and profile.workbooks.processing_log is not None
        and has_target(profile, "logs")
    ),
    "budget": lambda profile: profile.budget is not None and _has_in_database("costs")(profile),
    "breaker": lambda profile: (
        profile.budget is not None and profile.budget.breaker is not None and _has_database(profile)
    ),
}


def known() -> list[str]:
    """Every need a check or an action may name: the target kinds, then the derived ones."""
    return [*Targets.model_fields, *DERIVED]


def provides(profile: Profile, need: str) -> bool:
    """Whether the profile has what a check or an action needs."""
    if need in Targets.model_fields:
        return has_target(profile, need)
    if need in DERIVED:
        return DERIVED[need](profile)
    raise ValueError(f"unknown need {need!r} (known: {', '.join(known())})")
