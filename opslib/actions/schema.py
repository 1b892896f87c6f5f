"""Record the SQLite schema as the baseline `schema_drift` compares with."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import ClassVar

import pandas as pd

from opslib import paths
from opslib.actions import Applied, Plan
from opslib.clock import utc_now
from opslib.probes import ProbeError
from opslib.probes.schema import (
    baseline_path,
    differences,
    digest,
    line,
    load_baseline,
    read_schema,
)
from opslib.profiles import Profile

OWNER_ONLY = 0o600


@dataclass
class RecordSchemaBaseline:
    """Write the database's current schema to the baseline file, replacing any earlier
    one. The plan lists every difference the new baseline would accept; applied, it
    writes only the schema the plan saw (its digest), so a change made in between is
    never recorded unseen."""

    profile: Profile
    needs: ClassVar[str] = "sqlite"
    name: ClassVar[str] = "record_schema_baseline"

    def plan(self) -> Plan:
        path = baseline_path(self.profile)
        current = read_schema(self.profile)
        try:
            recorded = load_baseline(self.profile)
            unreadable = ""
        except ProbeError as exc:  # a damaged baseline is replaced, not a dead end
            recorded, unreadable = None, exc.reason
        target = f"{paths.shown(path)} for {self.profile.database_display()}"
        counts = ", ".join(f"{len(current[kind])} {kind}(s)" for kind in current)
        if unreadable:
            accepted = [unreadable]
            summary = f"record the schema ({counts}) in place of an unreadable baseline"
        elif recorded is None:
            accepted = []
            summary = f"record the schema ({counts}) as the first baseline"
        else:
            accepted = [line(row) for row in differences(recorded["schema"], current)]
            if not accepted:
                return Plan(self.name, target, "the baseline already matches the schema", ())
            summary = (
                f"re-record the baseline ({counts}), accepting {len(accepted)} difference(s) "
                f"from the one recorded {recorded.get('recorded_at', '(time unknown)')}"
            )
        change = {
            "baseline": str(path),
            "schema_digest": digest(current),
            "accepted_differences": accepted,
        }
        context = pd.DataFrame({"accepted difference": accepted}) if accepted else None
        return Plan(self.name, target, summary, (change,), context)

    def apply(self, plan: Plan) -> Applied:
        """Re-read the schema; record it only if it is still the one planned, keeping the
        baseline it replaces as the before-image, then compare the file with the schema."""
        (change,) = plan.changes
        path = baseline_path(self.profile)
        current = read_schema(self.profile)
        before = len(change["accepted_differences"]) or 1
        if digest(current) != change["schema_digest"] or str(path) != change["baseline"]:
            return Applied(0, before, before, [], [change["baseline"]], None, remeasured=True)
        try:
            previous: object = load_baseline(self.profile)
        except ProbeError:
            previous = path.read_text(encoding="utf-8", errors="replace")
        recorded = {
            "recorded_at": utc_now().isoformat(timespec="seconds"),
            "database": self.profile.database_display(),
            "schema": current,
        }
        paths.write_atomically(
            path, json.dumps(recorded, indent=1, sort_keys=True), mode=OWNER_ONLY
        )
        written = load_baseline(self.profile)
        remaining = (
            len(differences(written["schema"], read_schema(self.profile))) if written else before
        )
        return Applied(
            1, before, remaining, [change], [], {"previous_baseline": previous}, remeasured=True
        )
