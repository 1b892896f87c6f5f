"""Backups and restores against a real PostgreSQL: a dump with a snapshot manifest,
retention classes, and a restore into a new database that must match the manifest."""

from __future__ import annotations

import json
import re
import tarfile
from datetime import datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from postgres_server import PostgresServer
from support import Workspace

from opslib.probes.backups import Backup, to_keep


def test_retention_keeps_the_newest_of_each_hour_day_and_week() -> None:
    now = datetime(2026, 11, 23, 12, 0)
    backups = [
        Backup(Path(f"b{hours}"), now - timedelta(hours=hours, minutes=30))
        for hours in range(0, 24 * 20)
    ]
    keep = to_keep(backups, now, hourly=3, daily=2, weekly=2)
    kept_ages = sorted(int(path.name[1:]) for path in keep)
    assert kept_ages == [0, 1, 2, 24, 168]  # newest of 3 hours, then 1 day and 1 week back
    assert to_keep([], now, 24, 7, 4) == set()


def restore_databases(server: PostgresServer) -> set[str]:
    with server.engine().connect() as connection:
        return set(
            connection.execute(
                sa.text("SELECT datname FROM pg_database WHERE datname LIKE 'video_restore_%'")
            ).scalars()
        )


def assert_owner_only(*paths: Path) -> None:
    """Neither group nor others may read: a backup holds what the pipeline holds."""
    assert {str(path): oct(path.stat().st_mode & 0o077) for path in paths} == {
        str(path): "0o0" for path in paths
    }


def take_backup(workspace: Workspace) -> Path:
    """Back up the video database through the runbook; returns the dump file."""
    workspace.env["VIDEO_BACKUP_DIR"] = str(workspace.root / "backups")
    taken = workspace.opslib("run", "backup", "--profile", "video", "-p", "apply=true")
    assert "applied plan" in taken.stdout, taken.stdout + taken.stderr
    assert taken.returncode == 0, "the fresh backup is what backup_age reports"
    (dump,) = (workspace.root / "backups").glob("video-*.dump")
    assert_owner_only(dump.parent, dump, dump.with_suffix(".manifest.json"))
    return dump


def test_backup_then_restore_is_verified_against_the_manifest(
    workspace: Workspace,
    server: PostgresServer,
    video: dict[str, int],
) -> None:
    workspace.env["VIDEO_BACKUP_DIR"] = str(workspace.root / "backups")
    missing = workspace.opslib("run", "backup", "--profile", "video")
    assert "CRITICAL backup_age: no backup in" in missing.stdout, missing.stdout + missing.stderr
    dump = take_backup(workspace)
    manifest = json.loads(dump.with_suffix(".manifest.json").read_text())
    assert set(manifest["tables"]) == {"video_queue", "pipeline_costs"}
    restored = workspace.opslib("run", "restore", "--profile", "video", "-p", "apply=true")
    assert restored.returncode == 0, restored.stdout + restored.stderr
    target = re.search(
        r"into new database (\S+)",
        (workspace.reports.rglob("restore--*.html").__next__()).read_text(),
    ).group(1)
    engine = server.engine(target)
    with engine.connect() as connection:
        rows = connection.execute(sa.text("SELECT count(*) FROM video_queue")).scalar_one()
    engine.dispose()
    assert rows == manifest["tables"]["video_queue"]["rows"]


def test_restore_rejects_a_tampered_dump_and_drops_what_it_restored(
    workspace: Workspace,
    server: PostgresServer,
    video: dict[str, int],
) -> None:
    dump = take_backup(workspace)
    restores_before = restore_databases(server)
    manifest_path = dump.with_suffix(".manifest.json")
    manifest = json.loads(manifest_path.read_text())
    manifest["tables"]["video_queue"]["rows"] += 1  # the dump no longer matches what was backed up
    manifest_path.write_text(json.dumps(manifest))
    result = workspace.opslib("run", "restore", "--profile", "video", "-p", "apply=true")
    assert result.returncode == 3, result.stdout + result.stderr
    assert "restored video_queue differ from the backup's manifest" in result.stdout
    assert restore_databases(server) == restores_before


def test_restore_rejects_a_corrupted_dump_file(
    workspace: Workspace,
    server: PostgresServer,
    video: dict[str, int],
) -> None:
    dump = take_backup(workspace)
    content = bytearray(dump.read_bytes())
    middle = len(content) // 2
    content[middle : middle + 64] = bytes(64)
    dump.write_bytes(bytes(content))
    result = workspace.opslib("run", "restore", "--profile", "video", "-p", "apply=true")
    assert result.returncode == 3, result.stdout + result.stderr
    assert "apply failed" in result.stdout


def test_a_copy_kept_before_a_rollback_is_owner_only_whatever_the_live_files_mode(
    workspace: Workspace, spots: Path
) -> None:
    spots.chmod(0o644)  # the pipeline's database, readable by everyone on the machine
    for runbook in ("backup", "restore"):
        run = workspace.opslib("run", runbook, "--profile", "spots", "-p", "apply=true")
        assert "applied plan" in run.stdout, run.stdout + run.stderr
    (copy,) = (spots.parent / "backups").glob("spots-*.db")
    (kept,) = (spots.parent / "backups").glob("*.before-rollback")
    assert_owner_only(copy.parent, copy, kept, *kept.iterdir())
    assert spots.stat().st_mode & 0o777 == 0o644, "the live file keeps its own mode"


def test_a_configuration_backup_is_owner_only_whatever_the_configurations_mode(
    workspace: Workspace,
) -> None:
    assert workspace.opslib("demo", "catalog").returncode == 0
    config = workspace.data / "catalog" / "config" / "monitoring_config.json"
    config.chmod(0o644)
    run = workspace.opslib("run", "monthly-maintenance", "--profile", "catalog", "-p", "apply=true")
    assert run.returncode == 0, run.stdout + run.stderr
    (copy,) = (config.parent / "backup").glob("monitoring_config_*.json")
    assert_owner_only(copy)


def test_a_diagnostic_package_and_its_members_are_owner_only(workspace: Workspace) -> None:
    assert workspace.opslib("demo", "mediaplan").returncode == 0
    run = workspace.opslib("run", "diagnostic-package", "--profile", "mediaplan")
    assert "applied plan" in run.stdout, run.stdout + run.stderr
    (package,) = (workspace.reports / "diagnostics").glob("mediaplan-*.tar.gz")
    assert_owner_only(package.parent, package)
    with tarfile.open(package) as archive:
        assert {oct(member.mode) for member in archive.getmembers()} == {"0o600"}
