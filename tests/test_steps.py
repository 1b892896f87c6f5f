"""A procedure planned whole: one hash over every step, steps applied in order, and a
step that fails stops the rest with what ran before it named and kept in the audit."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import sqlalchemy as sa

from opslib.actions import Applied, Plan, execute
from opslib.actions.steps import Steps
from opslib.archive.ledger import Ledger
from opslib.context import RunContext
from opslib.status import Status


@dataclass
class WriteFile:
    """Writes `text` into `path`; re-checks that the file still holds what the plan saw."""

    path: Path
    text: str
    profile: None = None
    needs: ClassVar[str] = ""
    name: str = "write_file"

    def plan(self) -> Plan:
        before = self.path.read_text() if self.path.exists() else None
        if before == self.text:
            return Plan(self.name, str(self.path), "already written", ())
        return Plan(self.name, str(self.path), f"write {self.path.name}", ({"was": before},))

    def apply(self, plan: Plan) -> Applied:
        (change,) = plan.changes
        now = self.path.read_text() if self.path.exists() else None
        if now != change["was"]:
            raise RuntimeError(f"{self.path.name} changed since the plan")
        self.path.write_text(self.text)
        return Applied(1, 1, 0, [change], [], {"previous": now}, remeasured=True)


def _run(tmp_path: Path, steps: Steps, **how: object):
    ledger_url = f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    context = RunContext("procedure", "test", "run-1", "root", "test", "host")
    return execute(steps, context, lambda: Ledger(ledger_url), **how), ledger_url


def test_a_dry_run_shows_every_step_and_changes_nothing(tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    steps = Steps(
        "procedure",
        None,
        (WriteFile(first, "1", name="write_first"), WriteFile(second, "2", name="write_second")),
    )
    outcome, _ = _run(tmp_path, steps)
    assert outcome.mode == "dry-run"
    assert [part.action for part in outcome.plan.parts] == ["write_first", "write_second"]
    assert outcome.plan.summary == "write first; then write second"
    assert not first.exists() and not second.exists()


def test_the_one_hash_applies_every_step_in_order(tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    steps = Steps(
        "procedure",
        None,
        (WriteFile(first, "1", name="write_first"), WriteFile(second, "2", name="write_second")),
    )
    planned, _ = _run(tmp_path, steps)
    outcome, _ = _run(tmp_path, steps, approve=planned.plan.hash)
    assert outcome.mode == "applied" and outcome.applied.changed == 2
    assert first.read_text() == "1" and second.read_text() == "2"


def test_a_failing_step_stops_the_rest_and_names_what_ran(tmp_path: Path) -> None:
    first, third = tmp_path / "first", tmp_path / "third"
    second = tmp_path / "no-such-folder" / "second"  # planned fine, cannot be written
    steps = Steps(
        "procedure",
        None,
        (
            WriteFile(first, "1", name="write_first"),
            WriteFile(second, "2", name="write_second"),
            WriteFile(third, "3", name="write_third"),
        ),
    )
    outcome, ledger_url = _run(tmp_path, steps, apply=True)
    assert outcome.mode == "failed" and outcome.result.status is Status.CRITICAL
    assert "write_second failed: [Errno 2] No such file or directory" in outcome.message
    assert "after write_first (1 changed)" in outcome.message
    assert first.read_text() == "1" and not third.exists()
    with sa.create_engine(ledger_url).connect() as connection:
        outcome_row, backup = connection.execute(sa.text("SELECT outcome, backup FROM audit")).one()
    assert outcome_row == "failed" and json.loads(backup) == {"write_first": {"previous": None}}


@dataclass
class CannotPlan:
    """A step whose plan cannot be made here (a Redis whose snapshot is on another host)."""

    profile: None = None
    needs: ClassVar[str] = ""
    name: str = "snapshot"

    def plan(self) -> Plan:
        raise RuntimeError("the snapshot file is not on this machine")

    def apply(self, plan: Plan) -> Applied:
        raise AssertionError("never planned, never applied")


def test_an_optional_step_that_cannot_be_planned_is_left_out_and_named(tmp_path: Path) -> None:
    first = tmp_path / "first"
    optional = Steps(
        "procedure", None, (CannotPlan(), WriteFile(first, "1")), optional=frozenset({"snapshot"})
    )
    outcome, _ = _run(tmp_path, optional, apply=True)
    assert outcome.mode == "applied" and first.read_text() == "1"
    assert "(left out: snapshot (the snapshot file is not on this machine))" in outcome.plan.summary
    required = Steps("procedure", None, (CannotPlan(), WriteFile(tmp_path / "second", "2")))
    refused, _ = _run(tmp_path, required, apply=True)
    assert refused.mode == "failed" and refused.result.status is Status.UNKNOWN
    assert not (tmp_path / "second").exists()  # nothing runs of a plan not made whole
