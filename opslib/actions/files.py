"""File upkeep as planned actions: archive old logs, back up configuration.

The manual's `find logs/ -mtime +30 -exec gzip {} \\;` and `-mtime +90 -delete` run blind;
here the plan names every file with its size and age, compression is verified (the
archive must decompress to the same bytes) before the original goes, and each file's
condition is checked again when the plan is applied.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import humanfriendly
import pandas as pd

from opslib.actions import Applied, Plan
from opslib.clock import utc_now
from opslib.probes import processes
from opslib.probes.files import json_schema, matched, read_json, sha256
from opslib.probes.logs import log_files
from opslib.profiles import Profile
from opslib.units import DAY_S


def _age_days(path: Path) -> float:
    return (time.time() - path.stat().st_mtime) / DAY_S


@dataclass
class ArchiveLogs:
    """gzip log files untouched for `compress_after_days`; delete compressed ones older
    than `delete_after_days`."""

    profile: Profile
    needs: ClassVar[str] = "logs"
    compress_after_days: float = 30
    delete_after_days: float = 90
    name: str = "archive_logs"

    def _due(self, path: Path, open_now: set[Path]) -> str | None:
        """What the policy does to `path` now: compress, delete, or nothing. A file some
        process still has open is left alone (its writer would go on writing into a
        deleted file), and so is one whose archive name is taken."""
        if not path.is_file() or path.is_symlink() or path in open_now:
            return None
        compressed = path.suffix == ".gz"
        if not compressed and path.with_name(path.name + ".gz").exists():
            return None
        if compressed and _age_days(path) > self.delete_after_days:
            return "delete"
        if not compressed and _age_days(path) > self.compress_after_days:
            return "compress"
        return None

    def plan(self) -> Plan:
        files = log_files(self.profile)
        open_now = _open_files(files)
        rows = [
            {
                "file": str(path),
                "do": action,
                "bytes": path.stat().st_size,
                "age_days": round(_age_days(path), 1),
            }
            for path in files
            if (action := self._due(path, open_now))
        ]
        sizes = {
            action: sum(r["bytes"] for r in rows if r["do"] == action)
            for action in ("compress", "delete")
        }
        counts = {action: sum(r["do"] == action for r in rows) for action in sizes}
        return Plan(
            action=self.name,
            target=", ".join(self.profile.log_globs()),
            summary=f"gzip {counts['compress']} log file(s) older than {self.compress_after_days:g} days "
            f"({humanfriendly.format_size(sizes['compress'])}), delete {counts['delete']} archive(s) older "
            f"than {self.delete_after_days:g} days ({humanfriendly.format_size(sizes['delete'])})",
            changes=tuple({"file": r["file"], "do": r["do"]} for r in rows),
            context=pd.DataFrame(rows),
        )

    def apply(self, plan: Plan) -> Applied:
        done, skipped = [], []
        before = sum(
            Path(change["file"]).stat().st_size
            for change in plan.changes
            if Path(change["file"]).exists()
        )
        open_now = _open_files([Path(change["file"]) for change in plan.changes])
        for change in plan.changes:
            path = Path(change["file"])
            if self._due(path, open_now) != change["do"]:
                skipped.append(change["file"])
                continue
            if change["do"] == "compress":
                archive = _compress_verified(path)
                done.append({**change, "into": str(archive)})
            else:
                path.unlink()
                done.append(change)
        after = sum(
            Path(item.get("into", item["file"])).stat().st_size
            for item in done
            if Path(item.get("into", item["file"])).exists()
        )
        return Applied(len(done), before, after, done, skipped, None)


def _open_files(files: list[Path]) -> set[Path]:
    """Which of `files` some process has open now."""
    return {path for paths in processes.open_by(files).holders.values() for path in paths}


def _compress_verified(path: Path) -> Path:
    """`path` gzipped beside itself, kept only if it decompresses to the same bytes; the
    archive keeps the original's modification time (the retention clock) and mode (it is
    the pipeline's log, read by whoever read the original, not opslib's archive)."""
    archive = path.with_name(path.name + ".gz")
    partial = path.with_name(path.name + ".gz.part")
    with path.open("rb") as source, gzip.open(partial, "wb") as target:
        shutil.copyfileobj(source, target, 1 << 20)
    if sha256(partial, gzip.open) != sha256(path):
        partial.unlink()
        raise OSError(f"{partial.name} does not decompress to {path.name}: original kept")
    status = path.stat()
    os.utime(partial, (status.st_atime, status.st_mtime))
    os.chmod(partial, stat.S_IMODE(status.st_mode))
    if archive.exists():  # appeared meanwhile: keep both, touch neither
        partial.unlink()
        raise OSError(f"{archive.name} already exists: {path.name} left as it is")
    os.replace(partial, archive)
    path.unlink()
    return archive


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
