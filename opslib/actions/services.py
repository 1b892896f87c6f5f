"""Starting, stopping and restarting the services a profile declares (`services:`).

Only what the profile names is touched: a unit through `systemctl`, a program through
`supervisorctl`, a command-defined service through its own `stop:` command or, without
one, by signalling exactly the processes its `process:` regex matched when the plan was
made (each re-identified by its start time, so a reused pid is never signalled; see
`actions.service_control`). SIGKILL follows SIGTERM only where the service says so
(`kill_after_stop_timeout`) and the plan shows it. Services stop in reverse start order; each started one must prove its health
within its `start_timeout` before the next starts. Every action measures the services
again afterwards (`after_count`: those still running after a stop, not healthy after a
start).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import pandas as pd

from opslib.actions import Applied, Plan
from opslib.actions.service_control import (
    alive,
    look,
    start_change,
    start_one,
    stop_change,
    stop_one,
    wait_healthy,
    wait_stopped,
)
from opslib.errors import ChangedThenFailed
from opslib.probes import ProbeError
from opslib.probes.services import ServiceState, state
from opslib.profiles import Profile
from opslib.profiles.services import enabled_services


def _named(profile: Profile, services: tuple[str, ...] | list[str] | None) -> list[str]:
    """The services asked for (all switched on, when none are named), in start order."""
    enabled = enabled_services(profile)
    if not services:
        return enabled
    unknown = [name for name in services if name not in enabled]
    if unknown:
        off = [name for name in unknown if name in profile.services]
        raise ProbeError(
            f"{profile.source}: no service {', '.join(unknown)} switched on under services"
            + (f" ({', '.join(off)} switched off)" if off else "")
            + f"; known: {', '.join(enabled) or 'none'}"
        )
    return [name for name in enabled if name in services]


def _context(seen: list[ServiceState]) -> pd.DataFrame:
    return pd.DataFrame([state.row for state in seen])


@dataclass
class RestartService:
    """Stop one service (if it runs), start it, and wait for its health proof."""

    profile: Profile
    service: str
    name: ClassVar[str] = "restart_service"
    needs: ClassVar[str] = "services"

    def plan(self) -> Plan:
        (name,) = _named(self.profile, [self.service])
        seen = state(self.profile, name)  # unreadable: no plan, never a guess
        changes = ([stop_change(self.profile, seen)] if seen.running or seen.pids else []) + [
            start_change(self.profile, name)
        ]
        steps = " then ".join(f"{change['do']} ({change['via']})" for change in changes)
        service = self.profile.services[name]
        return Plan(
            self.name,
            f"{self.profile.name} service {name}",
            f"restart {name}: {steps}; wait up to {service.start_timeout:g} s for its "
            f"{service.proof} proof (now: {seen.detail})",
            tuple(changes),
            context=_context([seen]),
        )

    def apply(self, plan: Plan) -> Applied:
        name = self.service
        before = look(self.profile, name)
        done: list[dict[str, Any]] = []
        for change in plan.changes:
            if change["do"] == "stop":
                result = stop_one(self.profile, change)
                if not wait_stopped(self.profile, name, change):
                    raise ChangedThenFailed(
                        f"{name} is still running after its stop ({result}); not started again"
                    )
                done.append({**change, "result": result})
            else:
                try:
                    child = start_one(self.profile, name)
                except (ProbeError, OSError) as exc:
                    raise ChangedThenFailed(
                        f"{name} was stopped and could not be started again: {exc}; it is down",
                        {"before": before.row},
                    ) from None
                healthy, detail = wait_healthy(self.profile, name, child)
                done.append({**change, "result": detail, "healthy": healthy})
        after = look(self.profile, name)
        return Applied(
            changed=len(done),
            before_count=int(not before.healthy),
            after_count=int(not after.healthy),
            changes=done,
            skipped=[],
            backup={"before": before.row},
            remeasured=True,
        )


@dataclass
class StopServices:
    """Stop the named services (all, by default) in reverse start order, then check that
    nothing of them is left running."""

    profile: Profile
    services: tuple[str, ...] | None = None
    name: ClassVar[str] = "stop_services"
    needs: ClassVar[str] = "services"

    def plan(self) -> Plan:
        names = list(reversed(_named(self.profile, self.services)))
        seen = [state(self.profile, name) for name in names]
        changes = tuple(stop_change(self.profile, one) for one in seen if one.running or one.pids)
        order = ", ".join(change["service"] for change in changes)
        summary = (
            f"stop {len(changes)} service(s) in reverse start order: {order}"
            if changes
            else f"none of {', '.join(names)} is running"
        )
        return Plan(self.name, self.profile.name, summary, changes, context=_context(seen))

    def apply(self, plan: Plan) -> Applied:
        done, skipped = [], []
        for change in plan.changes:
            service = self.profile.services[change["service"]]
            if (
                service.kind == "commands"
                and not service.stop
                and change.get("pids")
                and not alive(change)
            ):
                skipped.append(change["service"])  # its planned processes are gone already
                continue
            try:
                result = stop_one(self.profile, change)
            except ProbeError as exc:
                result = f"failed: {exc.reason}"
            done.append({**change, "result": result})
        left = [
            change["service"]
            for change in plan.changes
            if not wait_stopped(self.profile, change["service"], change)
        ]
        return Applied(
            changed=len(done),
            before_count=len(plan.changes),
            after_count=len(left),
            changes=[{**change, "left_running": change["service"] in left} for change in done],
            skipped=skipped,
            backup={"running_before": [dict(change) for change in plan.changes]},
            remeasured=True,
        )


@dataclass
class StartServices:
    """Start the named services (all, by default) in start order, each proving its health
    before the next starts. A running service is left alone (restart it instead);
    `assume_stopped` plans every one regardless of its state now, for a procedure whose
    earlier step stops them."""

    profile: Profile
    services: tuple[str, ...] | None = None
    assume_stopped: bool = False
    name: ClassVar[str] = "start_services"
    needs: ClassVar[str] = "services"

    def plan(self) -> Plan:
        names = _named(self.profile, self.services)
        seen = [] if self.assume_stopped else [state(self.profile, name) for name in names]
        down = names if self.assume_stopped else [one.name for one in seen if not one.running]
        sick = [one.name for one in seen if one.running and not one.healthy]
        changes = tuple(start_change(self.profile, name) for name in down)
        summary = (
            f"start {len(changes)} service(s) in order, each healthy before the next: "
            + ", ".join(down)
            if changes
            else f"{', '.join(names)} already running"
        )
        if sick:
            summary += f" (running but not healthy, left alone: {', '.join(sick)})"
        return Plan(self.name, self.profile.name, summary, changes, context=_context(seen))

    def apply(self, plan: Plan) -> Applied:
        done: list[dict[str, Any]] = []
        skipped: list[str] = []
        failed = ""
        for change in plan.changes:
            name = change["service"]
            if failed:
                done.append({**change, "result": f"not started: {failed} is not healthy"})
                continue
            child = None
            now = look(self.profile, name)
            if now.running:
                skipped.append(name)  # running already: waited for, not started twice
            elif now.unreadable:
                done.append({**change, "result": f"not started: {now.detail}", "healthy": False})
                failed = name  # unread is not stopped: starting it could run it twice
                continue
            else:
                try:
                    child = start_one(self.profile, name)
                except (ProbeError, OSError) as exc:  # the ones before it stay started
                    done.append({**change, "result": f"failed: {exc}", "healthy": False})
                    failed = name
                    continue
            healthy, detail = wait_healthy(self.profile, name, child)
            done.append({**change, "result": detail, "healthy": healthy})
            failed = "" if healthy else name
        unhealthy = [
            change["service"]
            for change in plan.changes
            if not look(self.profile, change["service"]).healthy
        ]
        return Applied(
            changed=sum(1 for change in done if "healthy" in change) - len(skipped),
            before_count=len(plan.changes),
            after_count=len(unhealthy),
            changes=done,
            skipped=skipped,
            backup={"stopped_before": [change["service"] for change in plan.changes]},
            remeasured=True,
        )
