"""The four monitoring states every check, run and exit code speaks in.

The values are the exit codes of monitoring plugins (Nagios, Icinga, Sensu), so a status
is also what `opslib run` exits with. Each state has one colour, shared by the notebook,
the report and the status board, so a state looks the same wherever it is read.
"""

from __future__ import annotations

import enum

_COLOURS = ("#2e7d32", "#b26a00", "#c62828", "#6a1b9a")


class Status(enum.IntEnum):
    """Monitoring-plugin states; the value is the exit code."""

    OK = 0
    WARNING = 1
    CRITICAL = 2
    UNKNOWN = 3

    @classmethod
    def worst(cls, statuses: list[Status]) -> Status:
        """The status a run reports: UNKNOWN outranks CRITICAL, so an error is never hidden."""
        return max(statuses, default=cls.OK)

    @property
    def colour(self) -> str:
        """The colour this state is drawn in: green, amber, red, purple."""
        return _COLOURS[self.value]
