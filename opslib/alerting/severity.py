"""Incident severity: which priority (P1 to P4) a run's outcome deserves, by the
profile's rules, so the report and the message say how fast someone must respond.

Rules are `check=STATUS` conditions per level (`budget_usage=CRITICAL`, `*=WARNING`); a
check is named as in the report (`disk_free[data]`) or by its base name or a glob. The
most urgent level with a matching condition wins; no match means no incident.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from opslib.checks import CheckResult

# How fast each level asks for a response and an escalation (the incident scale the
# ideas manual uses; the profile decides which outcomes fall into which level).
RESPONSE = {
    "P1": "respond within 15 minutes, escalate immediately",
    "P2": "respond within 1 hour, escalate within 30 minutes",
    "P3": "respond within 4 hours, escalate within 2 hours",
    "P4": "next business day, no escalation",
}


@dataclass(frozen=True)
class Severity:
    level: str
    cause: str  # the result that matched, e.g. "budget_usage[total] is CRITICAL"

    def __str__(self) -> str:
        return f"incident {self.level} ({RESPONSE[self.level]}): {self.cause}"


def _glob(pattern: str) -> re.Pattern[str]:
    """`*` and `?` as wildcards; brackets are literal, as in `disk_free[data]`."""
    return re.compile(re.escape(pattern).replace(r"\*", ".*").replace(r"\?", "."))


def matches(pattern: str, check: str) -> bool:
    """Whether a rule's check part names `check`: in full (`disk_free[data]`), by its
    base name (`disk_free`), or by a glob (`*`, `stuck_jobs[*]`)."""
    rule = _glob(pattern)
    return bool(rule.fullmatch(check) or rule.fullmatch(check.partition("[")[0]))


def classify(results: list[CheckResult], rules: dict[str, list[str]]) -> Severity | None:
    """The most urgent level whose condition one of `results` meets (None: no incident)."""
    for level in sorted(rules):
        for condition in rules[level]:
            pattern, _, status = (part.strip() for part in condition.partition("="))
            for result in results:
                if result.status.name == status and matches(pattern, result.name):
                    return Severity(level, f"{result.name} is {status}")
    return None
