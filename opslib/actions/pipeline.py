"""The whole pipeline stopped or started as one reviewed plan.

Stopping raises the halt flag first (where the profile has one), so workers take no new
job while their services go down in reverse order. Starting brings the services up in
order and only then lowers the flag; it refuses while a reason to stay halted holds (the
database does not answer, a budget is at or over 100 %) unless
forced, and a forced plan carries those reasons among its changes, so its hash does too.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar

from opslib.actions import Applied, Plan
from opslib.actions.backup import TakeBackup
from opslib.actions.budget import ResumeGuard
from opslib.actions.halt import SetHalt
from opslib.actions.queue import ResetStuckJobs
from opslib.actions.redis_backup import TakeRedisBackup
from opslib.actions.services import StartServices, StopServices
from opslib.actions.steps import Steps
from opslib.probes import ProbeError
from opslib.probes.database import reachable
from opslib.profiles import Profile

DATABASE_DOWN = "the database does not answer"


@dataclass
class StopPipeline:
    """The halt flag raised (where the profile has one), then every service stopped in
    reverse start order and checked gone."""

    profile: Profile
    reason: str = "stop-pipeline runbook"
    name: ClassVar[str] = "stop_pipeline"
    needs: ClassVar[str] = "services"

    def _steps(self, with_halt: bool) -> Steps:
        steps: tuple = (StopServices(self.profile),)
        if with_halt:
            steps = (SetHalt(self.profile, reason=self.reason), *steps)
        return Steps(self.name, self.profile, steps)

    def plan(self) -> Plan:
        """With the database down the flag cannot be raised; the services still stop."""
        down = _database_down(self.profile) if self.profile.provides("halt") else ""
        plan = self._steps(not down).plan()
        if not down:
            return plan
        return replace(plan, summary=f"{plan.summary} (halt flag left out: {down})")

    def apply(self, plan: Plan) -> Applied:
        with_halt = any(part.action == "halt_pipeline" for part in plan.parts)
        return self._steps(with_halt).apply(plan)


def _database_down(profile: Profile) -> str:
    """Why the profile's database does not answer ('' when it does)."""
    try:
        reachable(profile)
    except ProbeError as exc:
        return f"{DATABASE_DOWN}: {exc.reason}"
    return ""


def halt_reasons(profile: Profile) -> list[str]:
    """Why the pipeline should stay halted, one line each (none: it may start)."""
    reasons = []
    if profile.provides("database"):
        down = _database_down(profile)
        if down:
            return [down]  # nothing else can be read from it
    if profile.provides("budget"):
        reasons += _budget_reasons(profile)
    return reasons


def _budget_reasons(profile: Profile) -> list[str]:
    """The resume guard's reading, as reasons: an unread budget is no proof none is spent."""
    guard = ResumeGuard.read(profile, force=True)
    if guard.unread:
        return [f"the budget could not be read: {guard.unread}"]
    return [
        f"budget {row['category']} at {row['percent']:g} % of its allocation" for row in guard.over
    ]


@dataclass
class StartPipeline:
    """Every service started in order, each healthy before the next, then the halt flag
    lowered; refused while `halt_reasons` holds unless `force`."""

    profile: Profile
    force: bool = False
    assume_stopped: bool = False  # a later step of a procedure that stopped them first
    name: ClassVar[str] = "start_pipeline"
    needs: ClassVar[str] = "services"

    def _steps(self, reasons: list[str]) -> Steps:
        steps: tuple = (StartServices(self.profile, assume_stopped=self.assume_stopped),)
        if not any(reason.startswith(DATABASE_DOWN) for reason in reasons):
            # forced past a spent budget here, the resume is forced past it too
            resume = SetHalt(
                self.profile, halt=False, reason="start-pipeline runbook", force=self.force
            )
            steps += (resume,)
        return Steps(self.name, self.profile, steps)

    def plan(self) -> Plan:
        reasons = halt_reasons(self.profile)
        plan = self._steps(reasons).plan()
        if reasons and not self.force:
            refusal = (
                "a reason to stay halted holds: "
                + "; ".join(reasons)
                + " (run with force=True to start anyway; the plan will carry these reasons)"
            )
            return replace(plan, changes=(), refused=refusal)
        if not reasons or plan.empty:
            return replace(plan, summary=f"{plan.summary} (no reason to stay halted holds)")
        return replace(
            plan,
            summary=f"FORCED despite: {'; '.join(reasons)}; then {plan.summary}",
            changes=({"forced_despite": reasons}, *plan.changes),
        )

    def apply(self, plan: Plan) -> Applied:
        forced = [change for change in plan.changes if "forced_despite" in change]
        reasons = forced[0]["forced_despite"] if forced else []
        return self._steps(reasons).apply(plan)


@dataclass
class RecoverPipeline:
    """The complete-failure procedure as one plan, shown whole before anything runs: the
    pipeline stopped (`StopPipeline`: halt flag, then every service, last started first),
    the database and Redis backed up, every job left processing put back in the queue in
    the table and in Redis together, then the pipeline started again (`StartPipeline`:
    each service healthy before the next, the flag lowered), refused while a reason to
    stay halted holds unless forced. A step the profile has nothing for (no backups, no
    Redis, a snapshot file on another host) is left out and named. Where the manual
    flushes Redis and resets every processing row by hand, this moves exactly the ids it
    lists; a job a worker takes while the services stop is left to `stuck-pipeline`."""

    profile: Profile
    force: bool = False
    name: ClassVar[str] = "recover_pipeline"
    needs: ClassVar[str] = "services"

    def _steps(self) -> Steps:
        return Steps(
            self.name,
            self.profile,
            (
                StopPipeline(self.profile, reason="complete-failure recovery"),
                TakeBackup(self.profile),
                TakeRedisBackup(self.profile),
                ResetStuckJobs(_every_processing_job(self.profile), name="reset_processing_jobs"),
                StartPipeline(self.profile, force=self.force, assume_stopped=True),
            ),
            optional=frozenset({"take_redis_backup"}),
        )

    def plan(self) -> Plan:
        return self._steps().plan()

    def apply(self, plan: Plan) -> Applied:
        return self._steps().apply(plan)


def _every_processing_job(profile: Profile) -> Profile:
    """The profile with no grace for progress: once every worker is stopped, a job still
    marked processing has nobody working on it, however recently it moved."""
    if profile.queue is None:
        return profile
    queue = profile.queue.model_copy(update={"stuck_after": 0.0})
    return profile.model_copy(update={"queue": queue})
