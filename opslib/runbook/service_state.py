"""The ideas manual's service states (HEALTHY, WARNING, CRITICAL, EMERGENCY) read from a
judged budget check, so a report speaks the manual's language and an EMERGENCY carries
the halt plan.

The states map onto our statuses: HEALTHY is OK; WARNING and CRITICAL are both WARNING,
CRITICAL being past the budget's throttle level (95 %), when non-critical work should be
slowed; EMERGENCY is CRITICAL (the budget is spent), when new spending must stop.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from html import escape
from typing import Any

from opslib.checks import CheckResult
from opslib.profiles import Profile
from opslib.runbook import render as show
from opslib.status import Status


class ServiceState(enum.Enum):
    HEALTHY = "normal monitoring"
    WARNING = "watch spending more closely"
    CRITICAL = "throttle non-critical work and find what is spending"
    EMERGENCY = "stop new spending (the halt plan below) and tell the budget owners"
    UNKNOWN = "the budget could not be read: look at it by hand"


STATUS_OF = {
    ServiceState.HEALTHY: Status.OK,
    ServiceState.WARNING: Status.WARNING,
    ServiceState.CRITICAL: Status.WARNING,
    ServiceState.EMERGENCY: Status.CRITICAL,
    ServiceState.UNKNOWN: Status.UNKNOWN,
}


@dataclass(frozen=True)
class Reading:
    """One budget result read as a service state, shown as a line in the notebook."""

    state: ServiceState
    cause: str
    applies: bool = True  # False when the profile has no budget to read

    @property
    def emergency(self) -> bool:
        return self.state is ServiceState.EMERGENCY

    def _repr_mimebundle_(self, **_kwargs: Any) -> dict[str, Any] | None:
        """No budget to read is a step that does not apply: the report drops it."""
        return None if self.applies else show.not_applicable("service state", self.cause)

    def _repr_html_(self) -> str | None:
        if not self.applies:  # None: JupyterLab shows the bundle's plain line instead
            return None
        return (
            f"<p>Service state {show.badge(STATUS_OF[self.state], self.state.name)} — "
            f"{escape(self.state.value)}<br><small>{escape(self.cause)}</small></p>"
        )


def _state(result: CheckResult, throttle_at: float) -> ServiceState:
    if result.status is Status.OK:
        return ServiceState.HEALTHY
    if result.status is Status.CRITICAL:
        return ServiceState.EMERGENCY
    if result.status is Status.WARNING:
        past_throttle = result.value is not None and result.value >= throttle_at
        return ServiceState.CRITICAL if past_throttle else ServiceState.WARNING
    return ServiceState.UNKNOWN


def budget_state(results: list[CheckResult], profile: Profile) -> Reading:
    """The worst service state among the `budget_usage` results (total and categories)."""
    order = list(ServiceState)
    readings = [
        Reading(_state(result, profile.budget.throttle_at), f"{result.name}: {result.summary}")
        for result in results
        if result.name.partition("[")[0] == "budget_usage"
    ]
    if not readings:
        return Reading(ServiceState.UNKNOWN, f"profile {profile.name} has no budget", False)
    # an unreadable category never hides a known EMERGENCY; ties keep the total (first)
    known = [reading for reading in readings if reading.state is not ServiceState.UNKNOWN]
    return max(known or readings, key=lambda reading: order.index(reading.state))
