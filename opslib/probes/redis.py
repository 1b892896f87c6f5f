"""Redis: latency, memory, evictions, queue sizes by key type, and the processing set
reconciled against the queue table.

Every call has a connect and a socket timeout and no retries, so a dead or paused server
is a reason within the profile's timeout, never a hang. Keys are read type-aware (LLEN,
SCARD, ZCARD) and never with KEYS.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import pandas as pd
import redis
import sqlalchemy as sa
from redis.backoff import NoBackoff
from redis.retry import Retry

from opslib.probes import Metric, ProbeError, TargetUnreachable
from opslib.probes.queue_table import QueueTable
from opslib.profiles import Profile
from opslib.profiles.secrets import scrub

SIZE_COMMAND = {"list": "LLEN", "set": "SCARD", "zset": "ZCARD"}


@contextmanager
def client(profile: Profile) -> Iterator[redis.Redis]:
    """A client with the profile's timeouts; connection errors and timeouts leave as
    `TargetUnreachable` with the reason."""
    target = profile.targets.redis
    if target is None:
        raise ProbeError(f"{profile.source} has no targets.redis")
    connection = redis.Redis.from_url(
        profile.redis_url(),
        socket_connect_timeout=target.connect_timeout,
        socket_timeout=target.socket_timeout,
        retry=Retry(NoBackoff(), 0),  # a dead server must fail once, fast, not three times
        retry_on_timeout=False,
        decode_responses=True,
    )
    try:
        yield connection
    except redis.TimeoutError:
        raise TargetUnreachable(
            f"Redis did not answer within {target.socket_timeout:g} s"
        ) from None
    except redis.ConnectionError as exc:
        raise TargetUnreachable(f"Redis unreachable: {scrub(str(exc))}") from None
    except redis.RedisError as exc:
        raise ProbeError(f"Redis error: {scrub(str(exc))}") from None
    finally:
        connection.close()


def reachable(profile: Profile) -> Metric:
    """Seconds a PING took."""
    with client(profile) as connection:
        started = time.monotonic()
        connection.ping()
        elapsed_s = time.monotonic() - started
    return Metric(elapsed_s, f"Redis answered PING in {elapsed_s * 1000:.1f} ms")


def memory(profile: Profile) -> Metric:
    """Used memory as a percentage of maxmemory (0 % reported when no limit is set)."""
    with client(profile) as connection:
        info = connection.info("memory")
    used, limit = info["used_memory"], info.get("maxmemory", 0)
    if not limit:
        return Metric(0.0, f"{info['used_memory_human']} used, no maxmemory set")
    used_pct = 100.0 * used / limit
    return Metric(
        used_pct, f"{info['used_memory_human']} of {info['maxmemory_human']} ({used_pct:.0f}%)"
    )


def evictions(profile: Profile) -> Metric:
    """Keys evicted and connections rejected since the server started: data loss signs."""
    with client(profile) as connection:
        stats = connection.info("stats")
        clients = connection.info("clients")
    table = pd.DataFrame(
        {
            "value": [
                stats["evicted_keys"],
                stats["rejected_connections"],
                clients["connected_clients"],
                clients["blocked_clients"],
            ]
        },
        index=["evicted_keys", "rejected_connections", "connected_clients", "blocked_clients"],
    )
    lost = stats["evicted_keys"] + stats["rejected_connections"]
    return Metric(
        lost,
        f"{stats['evicted_keys']} key(s) evicted, {stats['rejected_connections']} connection(s) rejected",
        table,
    )


def queue_sizes(profile: Profile) -> list[Metric]:
    """Length of every queue key by its type; a key of another type is UNKNOWN, named."""
    keys = profile.queue.redis_keys if profile.queue else {}
    metrics = []
    with client(profile) as connection:
        for role, key in keys.items():
            kind = connection.type(key)
            if kind == "none":
                metrics.append(Metric(0, f"{key} does not exist (empty)", label=role))
            elif kind in SIZE_COMMAND:
                size = connection.execute_command(SIZE_COMMAND[kind], key)
                metrics.append(Metric(size, f"{key} ({kind}) holds {size}", label=role))
            else:
                expected = "/".join(SIZE_COMMAND)
                metrics.append(
                    Metric(None, f"{key} is a {kind}, expected a {expected}", label=role)
                )
    return metrics


def _processing_members(profile: Profile) -> set[str]:
    key = profile.queue.redis_keys["processing"]
    with client(profile) as connection:
        kind = connection.type(key)
        if kind not in {"set", "none"}:
            raise ProbeError(f"{key} is a {kind}, expected a set")
        return connection.smembers(key)


def reconciliation(profile: Profile) -> pd.DataFrame:
    """Ids the processing set and the table disagree on: `orphan` (in Redis, row not
    processing) and `lost` (row processing, not in Redis). `table_state` is the row's
    state by the mapping (queued, processing, or its stored status), `missing` without a row."""
    queue = QueueTable.of(profile)
    members = _processing_members(profile)
    id_column = queue.column("id")
    state = sa.case(
        (queue.state("processing"), "processing"),
        (queue.state("queued"), "queued"),
        else_=sa.cast(queue.state_label(), sa.String) if queue.has("status") else "finished",
    )
    query = (
        sa.select(id_column, state)
        .select_from(queue.source)
        .where(sa.or_(queue.state("processing"), sa.cast(id_column, sa.String).in_(members)))
    )
    with queue.reading(profile) as connection:
        in_table = {str(row[0]): row[1] for row in connection.execute(query)}
    orphans = [
        (job, "orphan", in_table.get(job, "missing"))
        for job in members
        if in_table.get(job) != "processing"
    ]
    lost = [
        (job, "lost", state)
        for job, state in in_table.items()
        if state == "processing" and job not in members
    ]
    return pd.DataFrame(sorted(orphans + lost), columns=["id", "problem", "table_state"])


def processing_drift(profile: Profile) -> Metric:
    """How many ids the processing set and the queue table disagree on."""
    drift = reconciliation(profile)
    if drift.empty:
        return Metric(0, "the processing set matches the table")
    counts = drift["problem"].value_counts().to_dict()
    return Metric(
        len(drift),
        f"{counts.get('orphan', 0)} orphan(s) in Redis, {counts.get('lost', 0)} row(s) processing but absent from Redis",
        drift,
    )
