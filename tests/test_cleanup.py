"""The `Cleanup` action on real files with set modification times: what the plan lists,
what apply deletes or archives, and what it must leave alone (a symlink out of the
folder, a file changed since the plan, the newest N)."""

from __future__ import annotations

import gzip
import json
import os
import sqlite3
import time
from pathlib import Path

import pytest
from support import Workspace

from opslib.actions import execute
from opslib.actions.cleanup import Cleanup
from opslib.archive.ledger import Ledger
from opslib.context import RunContext
from opslib.profiles import Profile, load_profile
from opslib.status import Status

DAY = 86400


@pytest.fixture
def archive(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The run's ledger (an applied plan is audited there) in this test's folder."""
    monkeypatch.setenv("OPSLIB_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("OPSLIB_REPORTS_DIR", str(tmp_path / "reports"))


def aged(path: Path, days: float, size: int = 1000) -> Path:
    """A file of `size` bytes last modified `days` ago."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(os.urandom(size))
    moment = time.time() - days * DAY
    os.utime(path, (moment, moment))
    return path


def profile_with(tmp_path: Path, entry: str) -> Profile:
    path = tmp_path / "c.yaml"
    path.write_text(f"name: c\ncleanups:\n  media: {entry}\n")
    return load_profile(str(path))


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(folder)): (p.lstat().st_size, p.lstat().st_mtime_ns)
        for p in folder.rglob("*")
    }


@pytest.fixture
def media(tmp_path: Path, archive: None) -> Path:
    folder = tmp_path / "tmp"
    aged(folder / "old-a.mp4", 3, 1500)
    aged(folder / "old-b.mp4", 2, 2500)
    aged(folder / "fresh.mp4", 0.5, 4000)
    aged(folder / "old-notes.txt", 5, 100)  # not the pattern
    return folder


def test_a_dry_run_lists_every_file_and_changes_nothing(tmp_path: Path, media: Path) -> None:
    profile = profile_with(tmp_path, f"{{path: {media}, pattern: '*.mp4', older_than: 1 day}}")
    before = snapshot(media)
    outcome = execute(Cleanup(profile, "media"), RunContext.current("cleanup", "c"), Ledger)
    assert outcome.mode == "dry-run"
    plan = outcome.plan
    assert sorted(Path(c["file"]).name for c in plan.changes) == ["old-a.mp4", "old-b.mp4"]
    assert {c["do"] for c in plan.changes} == {"delete"}
    assert "frees 4,000 bytes" in plan.summary
    assert list(plan.context.sort_values("file").bytes) == [1500, 2500]
    assert snapshot(media) == before


def test_delete_removes_the_old_files_and_frees_exactly_their_bytes(
    tmp_path: Path, media: Path
) -> None:
    profile = profile_with(tmp_path, f"{{path: {media}, pattern: '*.mp4', older_than: 1 day}}")
    outcome = execute(
        Cleanup(profile, "media"), RunContext.current("cleanup", "c"), Ledger, apply=True
    )
    assert outcome.mode == "applied" and outcome.result.status is Status.OK, outcome.message
    assert sorted(p.name for p in media.iterdir()) == ["fresh.mp4", "old-notes.txt"]
    applied = outcome.applied
    assert applied.remeasured and applied.after_count == 0 and applied.changed == 2
    assert applied.backup["bytes_freed"] == 4000
    assert sorted(Path(f["file"]).name for f in applied.backup["files"]) == [
        "old-a.mp4",
        "old-b.mp4",
    ]


def test_archive_gzips_into_the_archive_folder_keeping_the_bytes_and_the_time(
    tmp_path: Path, media: Path
) -> None:
    into = tmp_path / "archive" / "media"
    profile = profile_with(
        tmp_path,
        f"{{path: {media}, pattern: '*.mp4', older_than: 1 day, mode: archive, "
        f"archive_to: {into}}}",
    )
    content = (media / "old-a.mp4").read_bytes()
    mtime = (media / "old-a.mp4").stat().st_mtime_ns
    action = Cleanup(profile, "media")
    plan = action.plan()
    assert {c["into"] for c in plan.changes} == {
        str(into / "old-a.mp4.gz"),
        str(into / "old-b.mp4.gz"),
    }
    applied = action.apply(plan)
    assert applied.changed == 2 and applied.after_count == 0
    assert not (media / "old-a.mp4").exists() and (media / "fresh.mp4").exists()
    with gzip.open(into / "old-a.mp4.gz", "rb") as stream:
        assert stream.read() == content
    assert (into / "old-a.mp4.gz").stat().st_mtime_ns == mtime
    assert action.plan().empty  # archived files are not archived again


def test_keep_newest_keeps_that_many_whatever_their_age(tmp_path: Path) -> None:
    folder = tmp_path / "backups"
    for day in range(100, 105):
        aged(folder / f"config_{day}.json", day)
    profile = profile_with(
        tmp_path, f"{{path: {folder}, pattern: '*.json', older_than: 90 days, keep_newest: 2}}"
    )
    action = Cleanup(profile, "media")
    action.apply(action.plan())
    assert sorted(p.name for p in folder.iterdir()) == ["config_100.json", "config_101.json"]


def test_a_symlink_out_of_the_folder_is_left_alone_and_its_target_survives(
    tmp_path: Path, media: Path
) -> None:
    outside = aged(tmp_path / "precious" / "master.mp4", 30)
    link = media / "link.mp4"
    link.symlink_to(outside)
    old = time.time() - 30 * DAY
    os.utime(link, (old, old), follow_symlinks=False)
    (media / "elsewhere").symlink_to(outside.parent, target_is_directory=True)
    profile = profile_with(tmp_path, f"{{path: {media}, pattern: '**/*.mp4', older_than: 1 day}}")
    action = Cleanup(profile, "media")
    plan = action.plan()
    planned = sorted(Path(c["file"]).name for c in plan.changes)
    assert planned == ["old-a.mp4", "old-b.mp4"]
    alone = plan.context[plan.context["do"] == "left alone"].set_index("file")
    assert "outside" in alone.loc[str(link), "why"]
    assert "left alone: link.mp4" in plan.summary
    action.apply(plan)
    assert outside.exists() and link.is_symlink()
    # a pattern that goes into a symlinked folder reaches a file outside: left alone too
    into_folders = profile_with(tmp_path, f"{{path: {media}, pattern: '*/*.mp4', older_than: 1 s}}")
    plan = Cleanup(into_folders, "media").plan()
    assert plan.empty
    [why] = plan.context.why
    assert why == f"reached through a symlink: {outside} is outside"


def test_a_file_modified_between_plan_and_apply_is_skipped(tmp_path: Path, media: Path) -> None:
    profile = profile_with(tmp_path, f"{{path: {media}, pattern: '*.mp4', older_than: 1 day}}")
    action = Cleanup(profile, "media")
    plan = action.plan()
    changed = media / "old-a.mp4"
    moment = changed.stat().st_mtime
    changed.write_bytes(b"rewritten")  # a writer took it up again, then its time was kept
    os.utime(changed, (moment, moment))
    applied = action.apply(plan)
    assert changed.read_bytes() == b"rewritten"
    assert applied.skipped == ["old-a.mp4: changed since the plan"]
    assert applied.changed == 1 and applied.backup["bytes_freed"] == 2500
    assert not (media / "old-b.mp4").exists()


def test_a_file_a_process_has_open_is_left_alone(tmp_path: Path, media: Path) -> None:
    profile = profile_with(tmp_path, f"{{path: {media}, pattern: '*.mp4', older_than: 1 day}}")
    with (media / "old-a.mp4").open("rb"):
        plan = Cleanup(profile, "media").plan()
    assert [Path(c["file"]).name for c in plan.changes] == ["old-b.mp4"]
    assert "old-a.mp4 (open by a running process)" in plan.summary


def test_a_cleanup_the_profile_does_not_name_is_unknown(tmp_path: Path, media: Path) -> None:
    profile = profile_with(tmp_path, f"{{path: {media}, older_than: 1 day}}")
    outcome = execute(Cleanup(profile, "tmp"), RunContext.current("cleanup", "c"), Ledger)
    assert outcome.result.status is Status.UNKNOWN
    assert (
        "no cleanup 'tmp' under cleanups" in outcome.message
        and "(it has: media)" in outcome.message
    )


def test_the_runbook_deletes_the_catalog_demos_expired_config_backups_and_audits_them(
    workspace: Workspace,
) -> None:
    assert workspace.opslib("demo", "catalog").returncode == 0
    backups = workspace.data / "catalog" / "config" / "backup"
    fresh = aged(backups / "monitoring_config_recent.json", 89)
    old = sorted(p.name for p in backups.iterdir() if p != fresh)
    assert len(old) == 2  # the demo's backups past the 90 days
    result = workspace.opslib("run", "cleanup", "--profile", "catalog", "-p", "apply=true")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "action:cleanup[config_backups]: applied plan" in result.stdout
    assert list(backups.iterdir()) == [fresh]
    with sqlite3.connect(workspace.reports / "ledger.sqlite") as ledger:
        [(backup,)] = ledger.execute("SELECT backup FROM audit WHERE outcome = 'applied'")
    assert sorted(Path(f["file"]).name for f in json.loads(backup)["files"]) == old
