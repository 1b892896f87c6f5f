"""Old files removed or archived as a plan: temporary media, outputs, configuration
backups, logs (each a `cleanups:` entry of the profile, or the log policy of `ArchiveLogs`).

The manuals' `find DIR -name PATTERN -mtime +N -delete` runs blind and follows whatever
the folder holds. Here the plan names every file with its size, age and what happens to
it, and the exact bytes it frees; nothing outside the folder is touched (a symlink, or a
file reached through a symlinked folder, is listed as left alone, its target untouched);
a file some process has open is left alone; the newest `keep_newest` files are kept
whatever their age. When the plan is applied each file is checked again (same inode,
modification time and size as planned, still past the age limit, still not among the
newest) and a file that changed is skipped. Archiving gzips the file into the archive
folder, keeps it only if it decompresses to the same bytes, then removes the original.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import humanfriendly
import pandas as pd

from opslib import paths
from opslib.actions import Applied, Plan
from opslib.probes import ProbeError, processes
from opslib.probes.files import sha256
from opslib.profiles import Profile
from opslib.units import DAY_S

GLOB_CHARACTERS = frozenset("*?[")


@dataclass(frozen=True)
class FileRule:
    """One set of files to clean, its folder resolved: `name` is how the plan names it."""

    name: str
    folder: Path
    pattern: str
    older_than_s: float
    keep_newest: int = 0
    mode: str = "delete"  # delete | archive
    archive_to: Path | None = None  # archive: where the .gz goes (default: the folder)
    suffix: str = ""  # only file names ending so

    @property
    def into(self) -> Path:
        return self.archive_to or self.folder

    def candidates(self) -> tuple[list[tuple[Path, os.stat_result]], list[dict[str, Any]]]:
        """The regular files of the set inside the folder with their lstat, newest first,
        and the matches left alone with the reason (symlinks, anything outside)."""
        root = self.folder.resolve()
        archive = self.into.resolve()
        found, alone = [], []
        for path in sorted(self.folder.glob(self.pattern)):
            if self.suffix and not path.name.endswith(self.suffix):
                continue
            if self.mode == "archive" and path.name.endswith(".gz"):
                continue  # already an archive
            try:
                status = path.lstat()
                real = path.resolve()
            except OSError:
                continue  # gone meanwhile
            if stat.S_ISLNK(status.st_mode):
                where = "outside" if not real.is_relative_to(root) else "inside"
                alone.append(self.left_alone(path, f"a symlink to {real}, {where} {self.folder}"))
            elif not stat.S_ISREG(status.st_mode):
                continue
            elif not real.is_relative_to(root):
                alone.append(self.left_alone(path, f"reached through a symlink: {real} is outside"))
            elif archive != root and real.is_relative_to(archive):
                continue  # an earlier archive
            else:
                found.append((path, status))
        found.sort(key=lambda item: item[1].st_mtime, reverse=True)
        return found, alone

    def left_alone(self, path: Path, reason: str) -> dict[str, Any]:
        return {"cleanup": self.name, "file": str(path), "do": "left alone", "why": reason}

    def target(self, path: Path) -> str:
        return str(self.into / f"{path.name}.gz") if self.mode == "archive" else ""


def plan_rows(rules: list[FileRule]) -> list[dict[str, Any]]:
    """Every file the rules would change, and every match left alone, as plan rows."""
    now = time.time()
    rows = []
    for rule in rules:
        if not rule.folder.is_dir():
            rows.append({"cleanup": rule.name, "file": str(rule.folder), "do": "missing"})
            continue
        found, alone = rule.candidates()
        rows += alone
        for path, status in found[rule.keep_newest :]:
            age_s = now - status.st_mtime
            if age_s <= rule.older_than_s:
                continue
            into = rule.target(path)
            row = {
                "cleanup": rule.name,
                "file": str(path),
                "do": rule.mode,
                "bytes": status.st_size,
                "age_days": round(age_s / DAY_S, 1),
                "into": into,
                "inode": status.st_ino,
                "mtime_ns": status.st_mtime_ns,
                "why": "",
            }
            if into and os.path.lexists(into):
                row.update(do="left alone", why=f"{Path(into).name} already exists")
            rows.append(row)
    due = [Path(row["file"]) for row in rows if row["do"] in {"delete", "archive"}]
    busy = _open_files(due)
    for row in rows:
        if Path(row["file"]) in busy:
            row.update(do="left alone", why="open by a running process")
    return rows


def make_plan(
    name: str, target: str, rows: list[dict[str, Any]], verbs: dict[str, str], scope: str = ""
) -> Plan:
    """The plan for `rows`; `verbs` words delete and archive in the summary (with
    `{count}` and `{size}`), `scope` says which files the rules take."""
    due = [row for row in rows if row["do"] in {"delete", "archive"}]
    parts = []
    for mode in ("archive", "delete"):
        chosen = [row for row in due if row["do"] == mode]
        if chosen:
            size = sum(row["bytes"] for row in chosen)
            parts.append(verbs[mode].format(count=len(chosen), size=_size(size)))
    summary = (", ".join(parts) or "no file is past its age limit") + scope
    in_place = sum(not freed(row) for row in due)
    gzip_saves = f"what gzip saves on {in_place} file(s) compressed in place" if in_place else ""
    if len(due) > in_place:
        summary += f": frees {sum(map(freed, due)):,} bytes" + (
            f" and {gzip_saves}" * bool(in_place)
        )
    elif due:
        summary += f": frees {gzip_saves}"
    missing = [row["file"] for row in rows if row["do"] == "missing"]
    if missing:
        summary += f"; {', '.join(missing)} does not exist: nothing to clean there"
    alone = [row for row in rows if row["do"] == "left alone"]
    if alone:
        named = (f"{Path(row['file']).name} ({row['why']})" for row in alone)
        summary += f"; left alone: {', '.join(named)}"
    keys = ("cleanup", "file", "do", "into", "bytes", "inode", "mtime_ns")
    return Plan(
        action=name,
        target=target,
        summary=summary,
        changes=tuple({key: row[key] for key in keys} for row in due),
        context=pd.DataFrame(
            rows, columns=["cleanup", "file", "do", "bytes", "age_days", "into", "why"]
        ),
    )


def apply_rows(rules: list[FileRule], plan: Plan) -> Applied:
    """Carry out the planned changes whose file is still exactly as planned."""
    by_name = {rule.name: rule for rule in rules}
    newest = {
        rule.name: {path for path, _ in rule.candidates()[0][: rule.keep_newest]}
        for rule in rules
        if rule.folder.is_dir()
    }
    busy = _open_files([Path(change["file"]) for change in plan.changes])
    done, skipped = [], []
    for change in plan.changes:
        path, rule = Path(change["file"]), by_name[change["cleanup"]]
        reason = _still_due(path, rule, change, newest.get(rule.name, set()), busy)
        if reason:
            skipped.append(f"{path.name}: {reason}")
            continue
        try:
            if change["do"] == "archive":
                _compress_verified(path, Path(change["into"]), change["inode"])
            else:
                path.unlink()
        except OSError as exc:  # one file that cannot go does not stop the others
            skipped.append(f"{path.name}: {exc.strerror or exc}")
            continue
        done.append(change)
    return Applied(
        changed=len(done),
        before_count=len(plan.changes),
        # measured again: the files that should be gone and are still there
        after_count=sum(os.path.lexists(change["file"]) for change in done),
        changes=done,
        skipped=skipped,
        backup={"files": done, "bytes_freed": sum(map(freed, done))},
        remeasured=True,
    )


def freed(change: dict[str, Any]) -> int:
    """Bytes a change frees: the file's size, unless it is gzipped beside itself."""
    moved = change["do"] == "delete" or Path(change["into"]).parent != Path(change["file"]).parent
    return change["bytes"] if moved else 0


def _still_due(
    path: Path, rule: FileRule, change: dict[str, Any], newest: set[Path], busy: set[Path]
) -> str:
    """Why the planned file must now be left alone ('' when it is still due)."""
    try:
        status = path.lstat()
    except FileNotFoundError:
        return "gone"
    if stat.S_ISLNK(status.st_mode) or not path.resolve().is_relative_to(rule.folder.resolve()):
        return "now a symlink, or outside the folder"
    planned = (change["inode"], change["mtime_ns"], change["bytes"])
    if (status.st_ino, status.st_mtime_ns, status.st_size) != planned:
        return "changed since the plan"
    if time.time() - status.st_mtime <= rule.older_than_s:
        return "no longer past the age limit"
    if path in newest:
        return f"now among the newest {rule.keep_newest}"
    if path in busy:
        return "open by a running process"
    if change["do"] == "archive" and os.path.lexists(change["into"]):
        return f"{Path(change['into']).name} already exists"
    return ""


def _open_files(files: list[Path]) -> set[Path]:
    """Which of `files` some process has open now."""
    if not files:
        return set()
    return {path for paths_ in processes.open_by(files).holders.values() for path in paths_}


def _compress_verified(path: Path, archive: Path, inode: int) -> Path:
    """`path` gzipped to `archive`, kept only if it decompresses to the same bytes; the
    archive keeps the original's modification time (the retention clock) and mode. The
    file is opened without following a symlink and must still be the planned inode: one
    swapped in after the last check never brings an outside file into the archive."""
    archive.parent.mkdir(parents=True, exist_ok=True)
    partial = archive.with_name(archive.name + ".part")
    with open(os.open(path, os.O_RDONLY | os.O_NOFOLLOW), "rb") as source:
        status = os.fstat(source.fileno())
        if status.st_ino != inode:
            raise OSError(f"{path.name} was replaced since it was checked: left as it is")
        with gzip.open(partial, "wb") as target:
            shutil.copyfileobj(source, target, 1 << 20)
        source.seek(0)
        original = hashlib.file_digest(source, "sha256").hexdigest()
    if sha256(partial, gzip.open) != original:
        partial.unlink()
        raise OSError(f"{partial.name} does not decompress to {path.name}: original kept")
    os.utime(partial, (status.st_atime, status.st_mtime))
    os.chmod(partial, stat.S_IMODE(status.st_mode))
    if archive.exists():  # appeared meanwhile: keep both, touch neither
        partial.unlink()
        raise OSError(f"{archive.name} already exists: {path.name} left as it is")
    os.replace(partial, archive)
    path.unlink()
    return archive


def split_glob(pattern: str) -> tuple[Path, str]:
    """A path glob as its fixed folder and the pattern below it: `/a/b/*.log` → (/a/b, *.log)."""
    parts = Path(pattern).parts
    fixed = next((i for i, part in enumerate(parts) if GLOB_CHARACTERS & set(part)), len(parts) - 1)
    return Path(*parts[:fixed]), "/".join(parts[fixed:])


def _size(size_bytes: float) -> str:
    return humanfriendly.format_size(size_bytes)


@dataclass
class Cleanup:
    """The profile's cleanup `cleanup` (a key of its `cleanups:`): old files of one folder
    deleted or archived, as its entry says."""

    profile: Profile
    cleanup: str
    needs: ClassVar[str] = "cleanups"

    @property
    def name(self) -> str:
        return f"cleanup[{self.cleanup}]"

    def _rules(self) -> list[FileRule]:
        entry = self.profile.cleanups.get(self.cleanup)
        if entry is None:
            known = ", ".join(self.profile.cleanups) or "none"
            raise ProbeError(
                f"no cleanup {self.cleanup!r} under cleanups in {self.profile.source} "
                f"(it has: {known})"
            )
        key = f"cleanups.{self.cleanup}"
        folder = paths.resolve_path(self.profile.expand(entry.path, f"{key}.path"))
        archive_to = None
        if entry.archive_to is not None:
            archive_to = paths.resolve_path(
                self.profile.expand(entry.archive_to, f"{key}.archive_to")
            )
        return [
            FileRule(
                self.cleanup,
                folder,
                self.profile.expand(entry.pattern, f"{key}.pattern"),
                entry.older_than,
                entry.keep_newest,
                entry.mode,
                archive_to,
            )
        ]

    def plan(self) -> Plan:
        rules = self._rules()
        [rule] = rules
        days = rule.older_than_s / DAY_S
        limit = (
            f"{days:g} day(s)" if days >= 1 else humanfriendly.format_timespan(rule.older_than_s)
        )
        which = f"{{count}} file(s) of {rule.pattern} older than {limit} ({{size}})"
        verbs = {"delete": f"delete {which}", "archive": f"gzip {which} into {rule.into}"}
        scope = f", keeping the newest {rule.keep_newest}" if rule.keep_newest else ""
        return make_plan(self.name, str(rule.folder / rule.pattern), plan_rows(rules), verbs, scope)

    def apply(self, plan: Plan) -> Applied:
        return apply_rows(self._rules(), plan)
