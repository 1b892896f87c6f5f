"""Redis backups against real redis-servers: BGSAVE and LASTSAVE, the RDB copied owner-only
with its SHA-256, pruned by the database backups' retention, its age judged, and a restore
rehearsed in a scratch server that must hold the source's keys."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import pytest
import redis
from postgres_server import _free_port
from redis_server import RedisServer
from support import Workspace, act

from opslib.actions.redis_backup import TakeRedisBackup
from opslib.actions.redis_restore import RehearseRedisRestore, scratch_redis
from opslib.clock import utc_now
from opslib.probes import backups
from opslib.probes.files import sha256
from opslib.profiles import Profile, load_profile
from opslib.runbook import Runbook
from opslib.status import Status

KEYS = {
    "string": "value",
    "list": ["a", "b", "c"],
    "set": {"x", "y"},
    "hash": {"field": "1"},
}


@pytest.fixture(scope="module")
def source() -> Iterator[RedisServer]:
    """A Redis of this module's own, holding keys of each type; BGSAVE writes its RDB."""
    server = RedisServer.start()
    client = server.client()
    client.set("string", KEYS["string"])
    client.rpush("list", *KEYS["list"])
    client.sadd("set", *KEYS["set"])
    client.hset("hash", mapping=KEYS["hash"])
    client.zadd("zset", {"m": 2.5})
    client.set("expiring", "soon", ex=3600)
    client.select(3)
    client.set("other-db", "1")
    yield server
    server.stop()


def profile_for(folder: Path, url: str) -> Profile:
    """Hourly 2, daily 2, weekly 0: small enough to see what retention drops."""
    path = folder / "rb.yaml"
    path.write_text(
        f"name: rb\ntargets:\n  redis:\n    url: {url}\n    connect_timeout: 1 s\n"
        f"    socket_timeout: 1 s\nbackups:\n  dir: {folder / 'backups'}\n  hourly: 2\n"
        "  daily: 2\n  weekly: 0\n  timeout: 20 s\n"
    )
    return load_profile(str(path))


def lastsave(server: RedisServer) -> int:
    return int(server.client().lastsave().timestamp())


def age(profile: Profile) -> tuple[Status, str]:
    (result,) = Runbook("backup", profile).evaluate("redis_backup_age").results
    return result.status, result.summary


def test_dry_run_changes_nothing_then_apply_snapshots_with_a_checked_checksum(
    source: RedisServer, tmp_path: Path
) -> None:
    profile = profile_for(tmp_path, source.url)
    assert age(profile) == (
        Status.CRITICAL,
        f"no Redis backup (rb-redis-*.rdb) in {tmp_path / 'backups'} (backups.dir)",
    )
    before = lastsave(source)
    dry = act(TakeRedisBackup(profile))
    assert dry.mode == "dry-run" and dry.result.status == Status.OK
    assert f"BGSAVE on Redis {source.url}, copy {source.base / 'dump.rdb'}" in dry.message
    assert "as rb-redis-<LASTSAVE UTC>Z.rdb with its .sha256, and prune 0" in dry.message
    assert not (tmp_path / "backups").exists() and lastsave(source) == before

    applied = act(TakeRedisBackup(profile), apply=True)
    assert applied.mode == "applied" and applied.result.status == Status.OK, applied.message
    assert applied.applied is not None and applied.applied.remeasured
    assert applied.applied.after_count == 0
    assert lastsave(source) > before
    (snapshot,) = backups.redis_existing(profile)
    created = applied.applied.changes[0]
    assert created["created"] == snapshot.path.name and not created["waited_for_running_save"]
    assert snapshot.checksum_path.read_text() == f"{sha256(snapshot.path)}  {snapshot.path.name}\n"
    assert sha256(snapshot.path) == sha256(source.base / "dump.rdb") == created["sha256"]
    modes = {p.name: oct(p.stat().st_mode & 0o777) for p in (snapshot.path, snapshot.checksum_path)}
    assert set(modes.values()) == {"0o600"}, modes
    assert abs((utc_now() - snapshot.taken_at).total_seconds()) < 5  # named by LASTSAVE, UTC
    status, summary = age(profile)
    assert status == Status.OK and snapshot.path.name in summary

    rehearsal = act(RehearseRedisRestore(profile), apply=True)
    assert rehearsal.mode == "applied", rehearsal.message
    assert rehearsal.applied is not None
    assert rehearsal.applied.changes[0]["keys"] == {"db0": 6, "db3": 1}


def test_a_restored_snapshot_holds_the_sources_keys_and_values(
    source: RedisServer, tmp_path: Path
) -> None:
    profile = profile_for(tmp_path, source.url)
    assert act(TakeRedisBackup(profile), apply=True).mode == "applied"
    (snapshot,) = backups.redis_existing(profile)
    with scratch_redis(snapshot.path) as scratch:
        assert sorted(scratch.keys()) == sorted(source.client().keys())
        assert scratch.get("string") == KEYS["string"]
        assert scratch.lrange("list", 0, -1) == KEYS["list"]
        assert scratch.smembers("set") == KEYS["set"]
        assert scratch.hgetall("hash") == KEYS["hash"]
        assert scratch.zscore("zset", "m") == 2.5
        assert 3500 < scratch.ttl("expiring") <= 3600
        scratch.select(3)
        assert scratch.get("other-db") == "1"
        folder = Path(scratch.connection_pool.connection_kwargs["path"]).parent
    assert not folder.exists(), "the scratch server and its folder are gone"


def test_a_tampered_snapshot_is_refused_before_it_is_loaded(
    source: RedisServer, tmp_path: Path
) -> None:
    profile = profile_for(tmp_path, source.url)
    assert act(TakeRedisBackup(profile), apply=True).mode == "applied"
    (snapshot,) = backups.redis_existing(profile)
    with snapshot.path.open("r+b") as damaged:
        damaged.seek(12)
        damaged.write(b"\xff")
    outcome = act(RehearseRedisRestore(profile), apply=True)
    assert outcome.result.status == Status.UNKNOWN
    assert f"{snapshot.path.name} does not match its recorded SHA-256" in outcome.message


def test_retention_prunes_redis_snapshots_as_it_prunes_the_dumps(
    source: RedisServer, tmp_path: Path
) -> None:
    profile = profile_for(tmp_path, source.url)
    folder = profile.backup_dir()
    folder.mkdir()
    now = utc_now().replace(minute=30, second=0, microsecond=0) - timedelta(hours=3)
    for hours in (0, 0.2, 1, 30, 30.1, 80):
        taken = now - timedelta(hours=hours)
        planted = folder / backups.redis_name(profile, taken)
        planted.write_bytes(b"REDIS0009")
        Path(f"{planted}.sha256").write_text("0  x\n")
        (folder / f"rb-{taken:%Y%m%dT%H%M%S}.dump").write_text("dump")
    dumps = {
        name.removeprefix("rb-").removesuffix(".dump")
        for name in backups.prunable(profile, backups.existing(profile))
    }
    plan = TakeRedisBackup(profile).plan()
    prune = plan.changes[1]["prune"]
    assert {name.removeprefix("rb-redis-").removesuffix("Z.rdb") for name in prune} == dumps
    # the newest of each of the last two days stays: 0 and 30 h (all are past two hours)
    assert len(prune) == 4

    applied = act(TakeRedisBackup(profile), approve=plan.hash)
    assert applied.mode == "applied", applied.message
    left = {p.name for p in folder.iterdir()}
    assert not {name for name in prune} & left
    assert not {f"{name}.sha256" for name in prune} & left
    assert len(backups.existing(profile)) == 6, "the dumps are not this action's to prune"
    assert len(backups.redis_existing(profile)) == 6 - 4 + 1


def test_a_save_already_running_is_waited_for(source: RedisServer, tmp_path: Path) -> None:
    profile = profile_for(tmp_path, source.url)
    client = source.client()
    client.config_set("rdb-key-save-delay", "100000")  # 0.1 s per key: a save to catch
    try:
        time.sleep(1)  # LASTSAVE is in seconds: start the running save in a later one
        client.bgsave()
        outcome = act(TakeRedisBackup(profile), apply=True)
    finally:
        client.config_set("rdb-key-save-delay", "0")
    assert outcome.mode == "applied", outcome.message
    assert outcome.applied is not None
    assert outcome.applied.changes[0]["waited_for_running_save"] is True


def test_two_runs_at_once_take_one_snapshot_each_in_turn(
    source: RedisServer, tmp_path: Path
) -> None:
    """The 30-minute schedule meeting the evening wrap: no run fails on the other's file."""
    profile = profile_for(tmp_path, source.url)
    with ThreadPoolExecutor(2) as pool:
        outcomes = list(pool.map(lambda _: act(TakeRedisBackup(profile), apply=True), range(2)))
    assert [outcome.mode for outcome in outcomes] == ["applied", "applied"], outcomes
    names = {outcome.applied.changes[0]["created"] for outcome in outcomes if outcome.applied}
    assert len(names) == 2 and {b.path.name for b in backups.redis_existing(profile)} == names


def test_a_redis_that_does_not_answer_is_unknown_within_its_timeout(tmp_path: Path) -> None:
    frozen = RedisServer.start()
    os.kill(frozen.process.pid, signal.SIGSTOP)
    try:
        profile = profile_for(tmp_path, frozen.url)
        started = time.monotonic()
        outcome = act(TakeRedisBackup(profile), apply=True)
        elapsed_s = time.monotonic() - started
    finally:
        frozen.stop()
    assert outcome.result.status == Status.UNKNOWN
    assert outcome.message == "could not plan: Redis did not answer within 1 s"
    assert elapsed_s < 2 and not (tmp_path / "backups").exists()


@pytest.fixture
def elsewhere(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A Redis whose folder this process cannot see: it runs in its own mount namespace
    with a private tmpfs over `seen`, as a server on another machine writes its own disk."""
    seen = Path(tempfile.mkdtemp(prefix="opslib-redis-elsewhere-"))
    port = _free_port()
    binary = shutil.which("redis-server")
    script = (
        f"mount -t tmpfs none {seen} && mkdir {seen}/data && exec {binary} --port {port} "
        f"--bind 127.0.0.1 --save '' --appendonly no --dir {seen}/data"
    )
    process = subprocess.Popen(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    client = redis.Redis(port=port, socket_timeout=1, retry=None)
    deadline = time.monotonic() + 5
    try:
        while True:
            if process.poll() is not None:
                pytest.skip(f"no private mount namespace here: {process.stderr.read().decode()}")
            try:
                client.ping()
                break
            except redis.ConnectionError:
                assert time.monotonic() < deadline, "the namespaced redis-server did not start"
                time.sleep(0.02)
        yield f"redis://127.0.0.1:{port}/0", seen
    finally:
        process.kill()
        process.wait(timeout=10)
        shutil.rmtree(seen, ignore_errors=True)


def test_a_redis_on_another_machine_is_unknown_naming_the_profile_key(
    elsewhere: tuple[str, Path], tmp_path: Path
) -> None:
    url, seen = elsewhere
    profile = profile_for(tmp_path, url)
    planned = act(TakeRedisBackup(profile))
    assert planned.result.status == Status.UNKNOWN
    assert planned.message == (
        f"could not plan: cannot read Redis's RDB file {seen}/data/dump.rdb (CONFIG GET "
        "dir/dbfilename of targets.redis.url): Redis is not on this machine, or this user may "
        "not read its folder"
    )
    (seen / "data").mkdir()  # a folder of the same name here: the plan goes through
    applied = act(TakeRedisBackup(profile), apply=True)
    assert applied.result.status == Status.UNKNOWN
    assert applied.message == (
        f"apply failed: after the save, {seen}/data/dump.rdb is not here: Redis "
        "(targets.redis.url) is not on this machine"
    )
    assert not backups.redis_existing(profile)


def test_the_backup_runbook_takes_only_the_redis_snapshot_when_asked(
    source: RedisServer, workspace: Workspace
) -> None:
    """The 30-minute schedule's run: no database step, one snapshot, its age OK."""
    profile = profile_for(workspace.root, source.url)
    result = workspace.opslib(
        "run",
        "backup",
        "--profile",
        str(profile.source),
        "-p",
        "redis_only=true",
        "-p",
        "apply=true",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "action:take_redis_backup: applied plan" in result.stdout, result.stdout
    # the snapshot and its age, nothing of the database
    assert "OK backup on rb: 2 check(s), all OK" in result.stdout, result.stdout
    (page,) = [p for p in workspace.archive_files() if p.suffix == ".html"]
    html = page.read_text()
    assert "<b>redis_backup_age</b>" in html and "database_reachable" not in html
    assert len(backups.redis_existing(profile)) == 1
