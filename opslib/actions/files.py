"""File upkeep as planned actions: archive old logs, back up configuration.

The manual's `find logs/ -mtime +30 -exec gzip {} \\;` and `-mtime +90 -delete` are one
`Cleanup` policy over the profile's log files (see `opslib.actions.cleanup`): the plan
names every file with its size and age, compression is verified (the archive must
decompress to the same bytes) before the original goes, a log still open is left alone,
and each file's condition is checked again when the plan is applied.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pandas as pd

from opslib.actions import Applied, Plan
from opslib.actions.cleanup import FileRule, apply_rows, make_plan, plan_rows, split_glob
from opslib.clock import utc_now
from opslib.probes.files import json_schema, matched, read_json, sha256
from opslib.profiles import Profile
from opslib.units import DAY_S


@dataclass
class ArchiveLogs:
    """gzip log files untouched for `compress_after_days` beside themselves; delete
    compressed ones older than `delete_after_days`: two cleanup rules per log glob."""

    profile: Profile
    needs: ClassVar[str] = "logs"
    compress_after_days: float = 30
    delete_after_days: float = 90
    name: str = "archive_logs"

    def _rules(self) -> list[FileRule]:
        rules = []
        for index, glob in enumerate(self.profile.log_globs()):
            folder, pattern = split_glob(glob)
            compress_s, delete_s = self.compress_after_days * DAY_S, self.delete_after_days * DAY_S
            rules += [
                FileRule(f"logs[{index}]", folder, pattern, compress_s, mode="archive"),
                FileRule(f"logs[{index}].gz", folder, pattern, delete_s, suffix=".gz"),
            ]
        return rules

    def plan(self) -> Plan:
        verbs = {
            "archive": "gzip {count} log file(s) older than "
            f"{self.compress_after_days:g} days ({{size}})",
            "delete": "delete {count} archive(s) older than "
            f"{self.delete_after_days:g} days ({{size}})",
        }
        return make_plan(
            self.name, ", ".join(self.profile.log_globs()), plan_rows(self._rules()), verbs
        )

    def apply(self, plan: Plan) -> Applied:
        return apply_rows(self._rules(), plan)


@dataclass
class BackupFiles:
    """Copy each valid file of a file set (the configuration) into a dated `backup/`
    folder beside it, with a SHA-256 manifest; files failing the set's JSON or schema
    check are named and not copied (a backup of a broken config restores a broken config)."""

    profile: Profile
    needs: ClassVar[str] = "files"
    file_set: str = "config"
    name: str = "backup_files"

    def plan(self) -> Plan:
        if self.file_set not in self.profile.files:
            return Plan(
                self.name, self.profile.name, f"profile has no file set {self.file_set!r}", ()
            )

        schema = json_schema(self.profile, self.file_set)
        stamp = utc_now().strftime("%Y%m%dT%H%M%S")  # never the name of an earlier backup
        rows = []
        for path in matched(self.profile, self.file_set):
            reason = (
                read_json(path, schema)[1]
                if schema or self.profile.files[self.file_set].is_json
                else ""
            )
            rows.append(
                {
                    "file": str(path),
                    "to": str(path.parent / "backup" / f"{path.stem}_{stamp}{path.suffix}"),
                    "sha256": sha256(path),
                    "problem": reason,
                }
            )
        good = [row for row in rows if not row["problem"]]
        refused = [f"{Path(row['file']).name} ({row['problem']})" for row in rows if row["problem"]]
        summary = f"copy {len(good)} file(s) of {self.file_set} into backup/ with their SHA-256"
        if refused:
            summary += f"; not copying {', '.join(refused)}"
        return Plan(
            action=self.name,
            target=self.profile.file_glob(self.file_set),
            summary=summary,
            changes=tuple({key: row[key] for key in ("file", "to", "sha256")} for row in good),
            context=pd.DataFrame(rows),
        )

    def apply(self, plan: Plan) -> Applied:
        done, skipped = [], []
        for change in plan.changes:
            source, target = Path(change["file"]), Path(change["to"])
            if not source.exists() or sha256(source) != change["sha256"]:
                skipped.append(change["file"])  # changed since the plan was shown
                continue
            target.parent.mkdir(exist_ok=True)
            if target.exists():
                skipped.append(change["file"])  # a backup is never overwritten
                continue
            shutil.copyfile(source, target)  # not copy2: a backup does not take a wider mode
            if sha256(target) != change["sha256"]:
                raise OSError(f"the copy {target} does not match {source.name}")
            done.append(change)
        if done:
            manifest = Path(done[0]["to"]).parent / f"manifest_{utc_now():%Y%m%dT%H%M%S}.json"
            manifest.write_text(json.dumps(done, indent=2))
        return Applied(len(done), len(plan.changes), len(done), done, skipped, None)
