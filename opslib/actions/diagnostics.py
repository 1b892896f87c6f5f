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
import re
import tarfile
import time
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import ClassVar

import humanfriendly
import pandas as pd

from opslib import paths
from opslib.actions import Applied, Plan
from opslib.clock import utc_now
from opslib.context import RunContext, git_sha
from opslib.probes import History
from opslib.probes.files import matched
from opslib.probes.logs import log_files
from opslib.profiles import Profile
from opslib.profiles.secrets import MASK, scrub

VERSIONS_OF = ("opslib", "pandas", "openpyxl", "sqlalchemy", "papermill", "nbconvert")
# the manual's escalation levels by how long the problem has lasted
ESCALATION = ((30, "Level 1: operations team"), (60, "Level 2: technical support"))
TOP_LEVEL = "Level 3: development team"


# a key that names a secret, holding a literal value rather than a ${VAR} reference
_LITERAL_SECRET = re.compile(
    r"^(?P<key>\s*-?\s*[\w.-]*(?:password|passwd|secret|token|api_?key|credential)[\w.-]*\s*:\s*)"
    r"(?P<value>(?!\$\{)[^\s#][^#\n]*?)\s*(?P<comment>#.*)?$",
    re.I | re.M,
)
READ_ERRORS = (OSError, EOFError, zlib.error, UnicodeError)


def _read_text(path: Path) -> str:
    """A text file's content, a compressed log unpacked, undecodable bytes replaced."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8", errors="replace") as stream:
        return stream.read()


def content_size(path: Path) -> int:
    """The bytes a file adds once unpacked: a gzip member's size from its trailer."""
    size = path.stat().st_size
    if path.suffix != ".gz" or size < 18:
        return size
    with path.open("rb") as stream:
        stream.seek(-4, os.SEEK_END)
        return int.from_bytes(stream.read(4), "little")


def _member_name(group: str, path: Path, taken: set[str]) -> str:
    """`group/name` (a compressed log loses its .gz); a second file of that name gets its
    folder's name, then a number, so no member overwrites another."""
    name = path.name.removesuffix(".gz") if path.suffix == ".gz" else path.name
    for candidate in (f"{group}/{name}", f"{group}/{path.parent.name}/{name}"):
        if candidate not in taken:
            return candidate
    number = 2
    while f"{group}/{number}-{name}" in taken:
        number += 1
    return f"{group}/{number}-{name}"


def mask_literal_secrets(text: str) -> str:
    """YAML with the literal values of secret-named keys masked (`password: hunter2`)."""
    return _LITERAL_SECRET.sub(
        lambda m: m["key"] + MASK + (f"  {m['comment']}" if m["comment"] else ""), text
    )


def escalation_level(minutes: float) -> str:
    for limit, level in ESCALATION:
        if minutes < limit:
            return level
    return TOP_LEVEL


def failing_streak(runs: list[dict]) -> list[dict]:
    """The runs (newest first) of the runbooks still failing, back to each one's last OK
    run: a five-minute health check that is fine does not end a day-old files incident."""
    streak, settled = [], set()
    for run in runs:  # newest first
        if run["runbook"] in settled:
            continue
        if run["status"] == "OK":
            settled.add(run["runbook"])
            continue
        streak.append(run)
    return streak


@dataclass
class DiagnosticPackage:
    """Gather what an escalation needs into `reports/diagnostics/<profile>-<time>.tar.gz`."""

    profile: Profile
    history: History  # the runs of this profile the incident entry is filled from
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

    def members(self) -> pd.DataFrame:
        """Every candidate file with its member name, unpacked size and whether it fits
        under the cap (newest first, so the cap leaves out the oldest)."""
        rows, total, taken = [], 0, set()
        for group, path in self._candidates():
            size = content_size(path)
            fits = total + size <= self.max_bytes
            total += size if fits else 0
            member = _member_name(group, path, taken)
            taken.add(member)
            rows.append({"member": member, "source": str(path), "bytes": size, "included": fits})
        return pd.DataFrame(rows, columns=["member", "source", "bytes", "included"])

    def plan(self) -> Plan:
        """The package's recipe is what is approved (profile, window, cap); which files
        match it is shown, and taken afresh when the package is written, so a report
        archived since the plan does not make an approval stale."""
        files = self.members()
        included = files[files["included"]]
        left_out = len(files) - len(included)
        target = paths.reports_dir() / "diagnostics"
        cap = humanfriendly.format_size(self.max_bytes)
        return Plan(
            action=self.name,
            target=str(target),
            summary=f"package {len(included)} file(s) changed in the last {self.days:g} day(s) "
            f"({humanfriendly.format_size(int(included['bytes'].sum()))} unpacked), the profile, "
            f"tool versions and an incident-log entry into {target}/{self.profile.name}-<time>.tar.gz"
            + (f"; {left_out} file(s) left out at the {cap} cap" if left_out else ""),
            changes=(
                {"profile": self.profile.name, "days": self.days, "max_bytes": self.max_bytes},
            ),
            context=files,
        )

    def _profile_text(self) -> str:
        """The profile as written (references, not values), scrubbed all the same: a
        profile may hold a literal password someone should not have put there."""
        source = self.profile.path
        if source is None or not source.exists():
            return "(the profile was not loaded from a file)\n"
        return scrub(mask_literal_secrets(source.read_text(encoding="utf-8")))

    def _versions(self) -> str:
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
        runs = self.history.history(profile=self.profile.name, limit=500)
        streak = failing_streak(runs)
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
        from opslib.probes.workbook_outputs import failed_inputs

        try:
            failed = failed_inputs(self.profile)
        except Exception as exc:  # noqa: BLE001 - the entry is still worth writing
            return f"; files affected: not determined ({type(exc).__name__})"
        return f"; files affected: {', '.join(failed['input']) or 'none'}"

    def apply(self, plan: Plan) -> Applied:
        """Write the package member by member (one file in memory at a time) under a
        temporary name, then rename it into place."""
        self.profile.resolve_all()  # every secret the profile names is known to scrub
        now = utc_now()
        folder = Path(plan.target)
        folder.mkdir(parents=True, exist_ok=True)
        package = folder / f"{self.profile.name}-{now:%Y%m%d-%H%M%S}.tar.gz"
        temporary = package.with_name(package.name + ".tmp")
        root = package.name.removesuffix(".tar.gz")
        manifest, skipped = [], []

        def add(archive: tarfile.TarFile, name: str, data: bytes) -> None:
            info = tarfile.TarInfo(f"{root}/{name}")
            info.size, info.mode = len(data), 0o600  # extracted as private as it is kept
            info.mtime = int(now.replace(tzinfo=UTC).timestamp())
            archive.addfile(info, io.BytesIO(data))
            manifest.append({"member": name, "bytes": len(data),
                             "sha256": hashlib.sha256(data).hexdigest()})  # fmt: skip

        files = self.members()
        with tarfile.open(temporary, "w:gz") as archive:
            for row in files.itertuples():
                if not row.included:
                    skipped.append(f"{row.source}: over the size cap")
                    continue
                try:
                    data = scrub(_read_text(Path(row.source))).encode()
                except READ_ERRORS as exc:  # rotated away, or cut off mid-rotation
                    skipped.append(f"{row.source}: {type(exc).__name__}: {exc}")
                    continue
                add(archive, row.member, data)
            add(archive, "PROFILE.yaml", self._profile_text().encode())
            add(archive, "VERSIONS.txt", self._versions().encode())
            add(archive, "INCIDENT.md", self.incident_entry(now).encode())
            listing = {"created": f"{now:%Y-%m-%dT%H:%M:%S}Z", "members": manifest,
                       "left_out": skipped}  # fmt: skip
            add(archive, "MANIFEST.json", json.dumps(listing, indent=1).encode())
        os.replace(temporary, package)
        members = [entry["member"] for entry in manifest]
        return Applied(
            len(members),
            0,
            len(members),
            [{"package": str(package), "members": members}],
            skipped,
            None,
        )
