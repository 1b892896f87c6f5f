"""What a pass over the logs found."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from opslib.probes.logscan.levels import ERROR_NAMES


@dataclass
class Pattern:
    """One normalized error message: how often, when first and last, one real example."""

    count: int
    first: datetime
    last: datetime
    example: str


@dataclass
class Triage:
    """What one pass over the logs found, for the lines at or after `since`."""

    since: datetime | None
    files: int = 0
    bytes_read: int = 0
    lines: int = 0
    levels: Counter[str] = field(default_factory=Counter)
    requests: int = 0
    rate_limited: int = 0
    patterns: dict[str, Pattern] = field(default_factory=dict)
    errors_per_hour: Counter[datetime] = field(default_factory=Counter)
    unreadable: list[str] = field(default_factory=list)  # files that could not be read, and why
    # files whose first lines are in no format opslib knows (or not in the one named): not read
    unrecognized: list[str] = field(default_factory=list)
    formats: Counter[str] = field(default_factory=Counter)  # files read, by format
    undated: int = 0  # entries counted in a window without a time of their own to place them

    @property
    def errors(self) -> int:
        """Lines at an error level: ERROR, CRITICAL, FATAL, and syslog's ALERT and EMERGENCY."""
        return sum(self.levels[level] for level in ERROR_NAMES)

    def top_patterns(self, limit: int = 10) -> list[tuple[str, Pattern]]:
        """The commonest patterns first."""
        return sorted(self.patterns.items(), key=lambda item: -item[1].count)[:limit]
