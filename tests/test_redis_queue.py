"""Redis against a real server: timeouts that hold, keys read by type, and the processing
set reconciled with the queue table, orphans cleared only when asked."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator

import pytest
from redis_server import RedisServer
from support import RedisQueue, Workspace

from opslib.actions.redis import ClearOrphans
from opslib.checks.catalogue import catalogue
from opslib.probes import TargetUnreachable
from opslib.probes import redis as redis_probe
from opslib.probes.redis import queue_sizes, reachable, reconciliation
from opslib.profiles import load_profile
from opslib.runbook import Runbook

REDIS_CHECKS = [
    name for name, spec in catalogue().items() if {"redis", "redis_queue"} & set(spec.needs)
]


def test_reconciliation_finds_the_planted_orphans_and_the_lost_job(redis_queue: RedisQueue) -> None:
    drift = reconciliation(load_profile(redis_queue.profile))
    assert (drift.orphans, drift.lost) == (2, 1)
    found = {(row.id, row.problem) for row in drift.listed.itertuples()}
    assert found == {
        (redis_queue.lost, "lost"),
        (redis_queue.orphan_done, "orphan"),
        (redis_queue.orphan_queued, "orphan"),
    }


def test_drift_counts_every_id_but_lists_only_the_first_of_each_kind(
    redis_queue: RedisQueue, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Memory stays flat on a set of millions: the list stops at LISTED, the counts go on."""
    monkeypatch.setattr(redis_probe, "LISTED", 1)
    profile = load_profile(redis_queue.profile)
    drift = reconciliation(profile)
    assert (drift.orphans, drift.lost, drift.total) == (2, 1, 3)
    assert sorted(drift.listed["problem"]) == ["lost", "orphan"]
    metric = redis_probe.processing_drift(profile)
    assert metric.value == 3 and "(the first 1 of each listed)" in metric.summary
    plan = ClearOrphans(profile).plan()
    assert len(plan.changes) == 1 and "run again for the other 1" in plan.summary


def test_queue_keys_are_sized_by_type_and_a_wrong_type_is_unknown_naming_the_key(
    redis_queue: RedisQueue, redis_server: RedisServer
) -> None:
    profile = load_profile(redis_queue.profile)
    sizes = {metric.label: metric for metric in queue_sizes(profile)}
    assert sizes["priority"].value == 1 and "zset" in sizes["priority"].summary
    assert sizes["processing"].value > 0 and "(set)" in sizes["processing"].summary
    redis_server.client().delete("queue:pending")
    redis_server.client().hset("queue:pending", "job", "1")
    wrong = {metric.label: metric for metric in queue_sizes(profile)}["pending"]
    assert (
        wrong.value is None and wrong.summary == "queue:pending is a hash, expected a list/set/zset"
    )


def test_queue_not_processing_reports_drift_and_plans_only_the_orphans(
    workspace: Workspace, redis_queue: RedisQueue
) -> None:
    result = workspace.opslib("run", "queue-not-processing", "--profile", redis_queue.profile)
    assert result.returncode == 1, result.stdout + result.stderr
    assert (
        "WARNING  processing_drift: 2 orphan(s) in Redis, 1 row(s) processing but absent from Redis"
        in result.stdout
    )
    assert (
        "dry run: would remove 2 orphan(s) from queue:processing, requeue 1 on queue:pending"
        in result.stdout
    )


def test_clearing_orphans_removes_them_and_requeues_the_queued_one(
    workspace: Workspace, redis_queue: RedisQueue, redis_server: RedisServer
) -> None:
    result = workspace.opslib(
        "run", "queue-not-processing", "--profile", redis_queue.profile, "-p", "apply=true"
    )
    assert "applied plan" in result.stdout, result.stdout + result.stderr
    client = redis_server.client()
    members = client.smembers("queue:processing")
    assert redis_queue.orphan_done not in members and redis_queue.orphan_queued not in members
    assert client.lrange("queue:pending", -1, -1) == [redis_queue.orphan_queued]
    drift = reconciliation(load_profile(redis_queue.profile))
    assert list(drift.listed["problem"]) == ["lost"], "the lost job is left for stuck-pipeline"


def test_paused_redis_is_a_timeout_not_a_hang(
    redis_queue: RedisQueue, redis_server: RedisServer
) -> None:
    redis_server.client().execute_command("CLIENT", "PAUSE", "4000", "ALL")
    started = time.monotonic()
    with pytest.raises(TargetUnreachable, match="did not answer within 1 s"):
        reachable(load_profile(redis_queue.profile))
    assert time.monotonic() - started < 2
    time.sleep(3)  # let the pause end before the next test uses the server


def test_stopped_redis_is_critical_at_once(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    server = RedisServer.start()
    server.stop()
    monkeypatch.setenv("OPSLIB_TEST_REDIS_URL", server.url)
    profile = tmp_path / "dead.yaml"
    profile.write_text(
        "name: dead\ntargets:\n  redis:\n    url: ${OPSLIB_TEST_REDIS_URL}\n    connect_timeout: 1 s\n"
    )
    started = time.monotonic()
    with pytest.raises(TargetUnreachable, match="Redis unreachable"):
        reachable(load_profile(str(profile)))
    assert time.monotonic() - started < 1 + 1


def test_morning_check_on_postgres_and_redis_includes_both_sections(
    workspace: Workspace, redis_queue: RedisQueue
) -> None:
    result = workspace.opslib("run", "morning-check", "--profile", redis_queue.profile)
    assert result.returncode == 1, result.stdout + result.stderr
    (page,) = [p for p in workspace.archive_files() if p.suffix == ".html"]
    html = page.read_text()
    for check in (
        "pg_connections",
        "pg_blocked_sessions",
        "redis_reachable",
        "redis_queue_size[pending]",
        "stuck_jobs",
    ):
        assert f"<b>{check}</b>" in html, check
    assert "Not applicable to profile" in html  # the SQLite integrity and log steps


@pytest.fixture
def frozen_redis(redis_queue: RedisQueue, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The queue profile's Redis replaced by a SIGSTOPped server: it accepts connections
    and answers nothing, so every command waits out the 1 s socket timeout."""
    frozen = RedisServer.start()
    os.kill(frozen.process.pid, signal.SIGSTOP)
    monkeypatch.setenv("OPSLIB_TEST_REDIS_URL", frozen.url)
    yield
    frozen.stop()


def evaluate_redis_checks(profile: str, checks: list[str]) -> tuple[list[str], float]:
    """Each check's one summary line, as a run reports them, and the seconds they took."""
    runbook = Runbook("queue-not-processing", load_profile(profile))
    started = time.monotonic()
    findings = [runbook.evaluate(check) for check in checks]
    return [finding.results[0].summary for finding in findings], time.monotonic() - started


def test_a_frozen_redis_costs_an_unattended_run_one_timeout_not_one_per_check(
    redis_queue: RedisQueue, frozen_redis: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPSLIB_RUN_ID", "unattended")
    summaries, elapsed_s = evaluate_redis_checks(redis_queue.profile, REDIS_CHECKS)
    first = "Redis did not answer within 1 s"
    assert len(REDIS_CHECKS) >= 5
    assert summaries == [first] + [
        f"not measured: Redis did not answer earlier in this run ({first})"
    ] * (len(REDIS_CHECKS) - 1)
    assert elapsed_s < 1 + 0.5


def test_a_person_rerunning_a_cell_asks_a_frozen_redis_again(
    redis_queue: RedisQueue, frozen_redis: None
) -> None:
    summaries, elapsed_s = evaluate_redis_checks(
        redis_queue.profile, ["redis_reachable", "redis_reachable"]
    )
    assert summaries == ["Redis did not answer within 1 s"] * 2
    assert elapsed_s >= 2
