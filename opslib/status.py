"""The four monitoring states every check, run and exit code speaks in.

The values are the exit codes of monitoring plugins (Nagios, Icinga, Sensu), so a status
is also what `opslib run` exits with. Each state has one colour, shared by the notebook,
the report and the status board, so a state looks the same wherever it is read.

Which state is worse is not the exit code's order: a CRITICAL that was measured outranks
an UNKNOWN that was not (a run that found the database down and could not read the logs
is CRITICAL), and an UNKNOWN outranks a WARNING (nothing measured is never "fine").
"""

from __future__ import annotations

import enum

_COLOURS = ("#2e7d32", "#b26a00", "#c62828", "#6a1b9a")
_SEVERITY = (0, 1, 3, 2)  # by value: OK, WARNING, CRITICAL, UNKNOWN


class Status(enum.IntEnum):
    """Monitoring-plugin states; the value is the exit code."""

    OK = 0
    WARNING = 1
    CRITICAL = 2
    UNKNOWN = 3

    @classmethod
    def worst(cls, statuses: list[Status]) -> Status:
        """The status a run reports: CRITICAL if any is, else UNKNOWN, else WARNING, else OK."""
        return max(statuses, key=lambda status: status.severity, default=cls.OK)

    @property
    def severity(self) -> int:
        """How bad the state is, for ordering: OK 0, WARNING 1, UNKNOWN 2, CRITICAL 3."""
        return _SEVERITY[self.value]

    @property
    def colour(self) -> str:
        """The colour this state is drawn in: green, amber, red, purple."""
        return _COLOURS[self.value]
