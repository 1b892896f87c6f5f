"""A diagnostic package for escalation: the recent logs and reports, the profile, the tool
versions and a pre-filled incident-log entry, in one `.tar.gz` a second-level engineer
can open without access to the machine.

The manual's `cp logs/*.log diag/ && tar -czf` copies whatever the logs hold, secrets
included, and grows without bound. Here every text member is scrubbed of every secret
the profile resolves (API keys, passwords in URLs), compressed logs are unpacked so they
can be scrubbed too, the newest files go in first until the size cap, and the manifest
says what was left out. It only ever writes a new file, next to the run reports.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import platform
import tarfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import ClassVar

import humanfriendly
import pandas as pd

from opslib import paths
from opslib.actions import Applied, Plan
from opslib.archive import Ledger, ledger_exists
from opslib.context import RunContext
from opslib.probes.files import matched
from opslib.probes.logs import log_files
from opslib.profiles import Profile
from opslib.redact import scrub

VERSIONS_OF = ("opslib", "pandas", "openpyxl", "sqlalchemy", "papermill", "nbconvert")
# the manual's escalation levels by how long the problem has lasted
ESCALATION = ((30, "Level 1: operations team"), (60, "Level 2: technical support"))
TOP_LEVEL = "Level 3: development team"


def _read_text(path: Path) -> str:
    """A text file's content, a compressed log unpacked, undecodable bytes replaced."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8", errors="replace") as stream:
        return stream.read()


def _member_name(group: str, path: Path) -> str:
    return f"{group}/{path.name.removesuffix('.gz') if path.suffix == '.gz' else path.name}"


def escalation_level(minutes: float) -> str:
    for limit, level in ESCALATION:
        if minutes < limit:
            return level
    return TOP_LEVEL


@dataclass
class DiagnosticPackage:
    """Gather what an escalation needs into `reports/diagnostics/<profile>-<time>.tar.gz`."""

    profile: Profile
    needs: ClassVar[str] = "host"
    days: float = 1.0  # logs and reports changed within this many days
    max_bytes: float = 50e6  # the package's content stops growing here
    by: str = ""
    name: str = "diagnostic_package"

    def _candidates(self) -> list[tuple[str, Path]]:
        """(group, file) of every recent log, pipeline report and opslib report, newest first."""
        since = time.time() - self.days * 86400
        found: list[tuple[str, Path]] = []
        if self.profile.targets.logs is not None:
            found += [("logs", path) for path in log_files(self.profile)]
        reports = self.profile.workbooks.reports if self.profile.workbooks else None
        if reports:
            found += [("pipeline-reports", path) for path in matched(self.profile, reports)]
        archive = paths.reports_dir()
        found += [
            ("opslib-reports", path)
            for path in archive.rglob(f"*--{self.profile.name}--*.html")
            if "diagnostics" not in path.parts
        ]
        recent = [(group, path) for group, path in found if path.stat().st_mtime >= since]
        return sorted(recent, key=lambda item: item[1].stat().st_mtime, reverse=True)

    def plan(self) -> Plan:
        rows, total = [], 0
        for group, path in self._candidates():
            size = path.stat().st_size
            fits = total + size <= self.max_bytes
            total += size if fits else 0
            rows.append({"member": _member_name(group, path), "source": str(path),
                         "bytes": size, "included": fits})  # fmt: skip
        included = [row for row in rows if row["included"]]
        target = paths.reports_dir() / "diagnostics"
        left_out = len(rows) - len(included)
        return Plan(
            action=self.name,
            target=str(target),
            summary=f"package {len(included)} file(s) changed in the last {self.days:g} day(s) "
            f"({humanfriendly.format_size(total)}), the profile, tool versions and an incident-log "
            f"entry into {target}/{self.profile.name}-<time>.tar.gz"
            + (
                f"; {left_out} file(s) left out at the {humanfriendly.format_size(self.max_bytes)} cap"
                if left_out
                else ""
            ),
            changes=tuple({"member": row["member"], "source": row["source"]} for row in included),
            context=pd.DataFrame(rows),
        )

    def _profile_text(self) -> str:
        """The profile as written (references, not values), scrubbed all the same: a
        profile may hold a literal password someone should not have put there."""
        source = self.profile.path
        if source is None or not source.exists():
            return "(the profile was not loaded from a file)\n"
        return scrub(source.read_text(encoding="utf-8"))

    def _versions(self) -> str:
        from opslib.runner import git_sha

        lines = [
            f"python {platform.python_version()} ({platform.platform()})",
            f"opslib git {git_sha()}",
        ]
        for package in VERSIONS_OF:
            try:
                lines.append(f"{package} {metadata.version(package)}")
            except metadata.PackageNotFoundError:
                lines.append(f"{package} (not installed)")
        return "\n".join(lines) + "\n"

    def incident_entry(self, now: datetime) -> str:
        """The manual's incident-log template, filled from the ledger's runs of this profile."""
        runs = Ledger().history(profile=self.profile.name, limit=200) if ledger_exists() else []
        streak = []
        for run in runs:  # newest first: the runs since the last all-OK one
            if run["status"] == "OK":
                break
            streak.append(run)
        started = streak[-1]["started_at"] if streak else now
        minutes = (now - started).total_seconds() / 60
        latest = {}
        for run in runs:
            latest.setdefault(run["runbook"], run)
        context = RunContext.current(self.name, self.profile.name)
        status_lines = [
            f"- {run['runbook']}: {run['status']} at {run['started_at']:%Y-%m-%d %H:%M} UTC: {run['summary']}"
            for run in latest.values()
        ] or ["- no run of this profile in the ledger"]
        steps = [
            f"{number}. {run['started_at']:%H:%M} ran {run['runbook']}: {run['status']}"
            for number, run in enumerate(reversed(streak), start=1)
        ] or ["1. (none recorded)"]
        return scrub(
            "\n".join(
                [
                    "# Incident log entry",
                    "",
                    f"Date: {now:%Y-%m-%d %H:%M} UTC",
                    f"Operator: {self.by or context.os_user}",
                    f"Profile: {self.profile.name} ({self.profile.description})",
                    "Issue: "
                    + (
                        f"{streak[0]['runbook']} is {streak[0]['status']}: {streak[0]['summary']}"
                        if streak
                        else "(describe)"
                    ),
                    f"Impact: {len(streak)} non-OK run(s) since {started:%Y-%m-%d %H:%M} UTC"
                    + self._files_affected(),
                    f"Escalation: {escalation_level(minutes)} (the problem is {minutes:.0f} min old)",
                    "",
                    "Latest status per runbook:",
                    *status_lines,
                    "",
                    "Steps taken:",
                    *steps,
                    "",
                    "Resolution: (how it was resolved, or to whom it was escalated)",
                    "Follow-up: (actions still required)",
                    "",
                ]
            )
        )

    def _files_affected(self) -> str:
        """For a pipeline of files, the inputs without a sound output."""
        if self.profile.workbooks is None:
            return ""
        from opslib.probes.workbooks import failed_inputs

        try:
            failed = failed_inputs(self.profile)
        except Exception as exc:  # noqa: BLE001 - the entry is still worth writing
            return f"; files affected: not determined ({type(exc).__name__})"
        return f"; files affected: {', '.join(failed['input']) or 'none'}"

    def apply(self, plan: Plan) -> Applied:
        """Write the package under a temporary name, then rename it into place."""
        self.profile.resolve_all()  # every secret the profile names is known to scrub
        now = datetime.now(UTC).replace(tzinfo=None)
        folder = Path(plan.target)
        folder.mkdir(parents=True, exist_ok=True)
        package = folder / f"{self.profile.name}-{now:%Y%m%d-%H%M%S}.tar.gz"
        temporary = package.with_name(package.name + ".tmp")
        members, skipped = {}, []
        for change in plan.changes:
            try:
                members[change["member"]] = scrub(_read_text(Path(change["source"]))).encode()
            except OSError as exc:  # rotated away since the plan
                skipped.append(f"{change['source']}: {exc.strerror}")
        members["PROFILE.yaml"] = self._profile_text().encode()
        members["VERSIONS.txt"] = self._versions().encode()
        members["INCIDENT.md"] = self.incident_entry(now).encode()
        manifest = [
            {"member": name, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
            for name, data in members.items()
        ]
        members["MANIFEST.json"] = json.dumps({"created": f"{now:%Y-%m-%dT%H:%M:%S}Z",
                                               "members": manifest, "left_out": skipped}, indent=1).encode()  # fmt: skip
        with tarfile.open(temporary, "w:gz") as archive:
            for name, data in members.items():
                info = tarfile.TarInfo(f"{package.name.removesuffix('.tar.gz')}/{name}")
                info.size, info.mtime, info.mode = (
                    len(data),
                    int(now.replace(tzinfo=UTC).timestamp()),
                    0o644,
                )
                archive.addfile(info, io.BytesIO(data))
        os.replace(temporary, package)
        return Applied(
            len(members),
            0,
            len(members),
            [{"package": str(package), "members": list(members)}],
            skipped,
            None,
        )
