"""Redis faults at the probe level: down, frozen, paused, refusing the password, keys of
the wrong type, and a processing set of a million members. An unreachable Redis costs an
unattended run one timeout, a key of the wrong type is UNKNOWN naming it, and a huge set
is reconciled in bounded time and memory."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from faults_support import (
    WRONG_PASSWORD,
    GuardedDatabase,
    Scenario,
    assert_no_canary,
    assert_probe_scenario,
    assert_within,
    bound,
    statuses,
    write_profile,
)
from redis_server import RedisServer

from opslib.profiles import load_profile
from opslib.runbook import Runbook
from opslib.status import Status

PROFILE = """targets:
  database:
    url: ${FAULT_PG_DSN}
    connect_timeout: 2 s
    statement_timeout: %(statement)s s
  redis:
    url: ${FAULT_REDIS_URL}
    connect_timeout: 1 s
    socket_timeout: 1 s
queue:
  table: jobs
  stuck_after: 30 min
  redis_keys:
    pending: queue:pending
    priority: queue:priority
    processing: queue:processing
"""
REDIS_CHECKS = (
    "redis_reachable",
    "redis_memory",
    "redis_evictions",
    "redis_queue_size",
    "processing_drift",
)
MILLION = 1_000_000


@contextlib.contextmanager
def stopped(redis: RedisServer) -> Iterator[str]:
    redis.process.kill()
    redis.process.wait(timeout=10)
    yield redis.url


@contextlib.contextmanager
def frozen(redis: RedisServer) -> Iterator[str]:
    """SIGSTOP: the kernel still accepts connections; nothing ever answers."""
    os.kill(redis.process.pid, signal.SIGSTOP)
    try:
        yield redis.url
    finally:
        os.kill(redis.process.pid, signal.SIGCONT)


@contextlib.contextmanager
def paused(redis: RedisServer) -> Iterator[str]:
    redis.client().execute_command("CLIENT", "PAUSE", "10000", "ALL")
    yield redis.url  # the pause outlives the test: the server is stopped after it


@contextlib.contextmanager
def wrong_password(redis: RedisServer) -> Iterator[str]:
    redis.client().config_set("requirepass", "the-real-redis-password")
    yield f"redis://:{WRONG_PASSWORD}@127.0.0.1:{redis.port}/0"


@contextlib.contextmanager
def keys_of_the_wrong_type(redis: RedisServer) -> Iterator[str]:
    client = redis.client()
    client.set("queue:pending", "42")
    client.hset("queue:priority", "job", "7")
    client.xadd("queue:processing", {"job": "3"})
    yield redis.url


@contextlib.contextmanager
def processing_is_a_list(redis: RedisServer) -> Iterator[str]:
    redis.client().rpush("queue:processing", "1", "2", "3")
    yield redis.url


SCENARIOS = [
    Scenario("redis-down", "the server is gone (connection refused)", stopped,
             REDIS_CHECKS, statuses(Status.CRITICAL), bound(1)),
    Scenario("redis-sigstopped", "SIGSTOP: connects, never answers", frozen,
             REDIS_CHECKS, statuses(Status.CRITICAL), bound(1)),
    Scenario("redis-client-pause", "CLIENT PAUSE ALL for 10 s", paused,
             REDIS_CHECKS, statuses(Status.CRITICAL), bound(1)),
    Scenario("redis-wrong-password", "requirepass set, the profile's password wrong",
             wrong_password, REDIS_CHECKS, statuses(Status.CRITICAL), bound(1)),
    Scenario("redis-wrong-key-types", "pending a string, priority a hash, processing a stream",
             keys_of_the_wrong_type, ("redis_queue_size", "processing_drift"),
             statuses(Status.UNKNOWN), bound(1)),
    Scenario("redis-processing-is-a-list", "the processing set is a list",
             processing_is_a_list, ("processing_drift",), statuses(Status.UNKNOWN), bound(1)),
]  # fmt: skip


def _profile(tmp_path: Path, statement_timeout_s: float = 5) -> str:
    return str(write_profile(tmp_path, "redisq", PROFILE % {"statement": statement_timeout_s}))


@pytest.mark.parametrize("scenario", SCENARIOS, ids=str)
def test_redis_fault_is_reported_within_its_timeout(
    scenario: Scenario,
    own_redis: RedisServer,
    guarded_db: GuardedDatabase,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPSLIB_RUN_ID", f"fault-{scenario.name}")  # an unattended run
    monkeypatch.setenv("FAULT_PG_DSN", guarded_db.dsn())
    before = guarded_db.digest()
    with scenario.setup(own_redis) as url:
        monkeypatch.setenv("FAULT_REDIS_URL", url)
        runbook = Runbook("faults", load_profile(_profile(tmp_path)))
        started = time.monotonic()
        findings = [runbook.evaluate(check) for check in scenario.command]
        elapsed_s = time.monotonic() - started
    assert_probe_scenario(scenario, findings, elapsed_s)
    assert guarded_db.digest() == before


MEASURE_DRIFT = """
import json, resource, sys, time
from opslib.profiles import load_profile
from opslib.runbook import Runbook
runbook = Runbook("faults", load_profile(sys.argv[1]))
started = time.monotonic()
finding = runbook.evaluate("processing_drift")
print(json.dumps({
    "seconds": time.monotonic() - started,
    "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "results": [[r.status.name, r.value, r.summary] for r in finding.results],
}))
"""
# No single timeout covers a whole reconciliation of a million ids, only each call it
# makes; 20 s is what an hourly run can spend on it.
MILLION_BOUND_S = 20
# memory must not grow with the set: a million members may cost what ten do, plus 150 MB
MILLION_EXTRA_MB = 150


def _measure_drift(profile: str, env: dict[str, str]) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", MEASURE_DRIFT, profile],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert_no_canary(done.stdout, done.stderr)
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_redis_million_member_processing_set_is_reconciled_in_bounded_time_and_memory(
    own_redis: RedisServer,
    guarded_db: GuardedDatabase,
    tmp_path: Path,
) -> None:
    """One SQL parameter per member broke at 65,535 members and held the whole set in
    memory; every member here is an orphan, so the drift is a WARNING of a million."""
    env = {
        **os.environ,
        "OPSLIB_RUN_ID": "fault-redis-million",
        "FAULT_PG_DSN": guarded_db.dsn(),
        "FAULT_REDIS_URL": own_redis.url,
    }
    profile = _profile(tmp_path, statement_timeout_s=10)
    seed = "for i = 1, tonumber(ARGV[1]) do redis.call('SADD', KEYS[1], tostring(100000 + i)) end"
    own_redis.client().eval(seed, 1, "queue:processing", 10)
    ten = _measure_drift(profile, env)
    own_redis.client().eval(seed, 1, "queue:processing", MILLION)
    before = guarded_db.digest()
    million = _measure_drift(profile, env)
    ((status, value, summary),) = million["results"]
    assert status == "WARNING" and value is not None and value >= MILLION, summary
    assert_within("redis-million-member-set", million["seconds"], MILLION_BOUND_S)
    grown_mb = million["peak_mb"] - ten["peak_mb"]
    assert grown_mb < MILLION_EXTRA_MB, f"peak {million['peak_mb']:.0f} MB, +{grown_mb:.0f} MB"
    assert guarded_db.digest() == before
