"""Redis: latency, memory, evictions, queue sizes by key type, and the processing set
reconciled against the queue table.

Every call has a connect and a socket timeout and no retries, so a dead or paused server
is a reason within the profile's timeout, never a hang, and one that did not answer is not
asked again in the same run (`db.RunMemory`, as for the database). Keys are read
type-aware (LLEN, SCARD, ZCARD) and never with KEYS; the processing set is read with SSCAN
and compared with the table `BATCH` ids at a time, whatever its size.
"""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import humanfriendly
import pandas as pd
import redis
import sqlalchemy as sa
from redis.backoff import NoBackoff
from redis.retry import Retry

from opslib.probes import Metric, ProbeError, TargetUnreachable, db
from opslib.probes.queue_table import QueueTable, untyped
from opslib.profiles import Profile
from opslib.profiles.secrets import scrub

SIZE_COMMAND = {"list": "LLEN", "set": "SCARD", "zset": "ZCARD"}
# ids per SSCAN, per SQL query and per SMISMEMBER: each call stays short and far below
# PostgreSQL's 65,535 bind parameters, and memory does not grow with the set
BATCH = 10_000
# disagreeing ids named per kind (orphan, lost): the counts go on, the list stops here
LISTED = 10_000
# how a member is read as a value of the id column, by the type a stored id comes back
# as: compared in the column's own type, the lookup uses the table's index
ID_PARSERS: dict[type, Callable[[str], object]] = {int: int, str: str, uuid.UUID: uuid.UUID}


@contextmanager
def client(profile: Profile) -> Iterator[redis.Redis]:
    """A client with the profile's timeouts; connection errors and timeouts leave as
    `TargetUnreachable` with the reason, which the run remembers for this URL."""
    target = profile.targets.redis
    if target is None:
        raise ProbeError(f"{profile.source} has no targets.redis")
    url = profile.redis_url()
    memory = db.run_memory()
    memory.raise_if_unreachable(url, "Redis")
    connection = redis.Redis.from_url(
        url,
        socket_connect_timeout=target.connect_timeout,
        socket_timeout=target.socket_timeout,
        retry=Retry(NoBackoff(), 0),  # a dead server must fail once, fast, not three times
        retry_on_timeout=False,
        decode_responses=True,
    )
    try:
        yield connection
    except redis.TimeoutError:
        reason = f"Redis did not answer within {target.socket_timeout:g} s"
        raise memory.remember(url, TargetUnreachable(reason)) from None
    except redis.ConnectionError as exc:
        reason = f"Redis unreachable: {scrub(str(exc))}"
        raise memory.remember(url, TargetUnreachable(reason)) from None
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


def _memory_settings(connection: redis.Redis) -> tuple[int, str, str]:
    """maxmemory (bytes, 0 = no limit), the eviction policy, and where they were read:
    CONFIG GET, else INFO memory (a managed Redis often disables or renames CONFIG)."""
    try:
        config = connection.config_get("maxmemory*")
        return int(config["maxmemory"]), config["maxmemory-policy"], "CONFIG GET"
    except (redis.ResponseError, KeyError) as exc:
        refused = scrub(str(exc)) if isinstance(exc, redis.ResponseError) else "no such setting"
    try:
        info = connection.info("memory")
    except redis.ResponseError as exc:
        info = {"refused": scrub(str(exc))}
    if "maxmemory" not in info or "maxmemory_policy" not in info:
        why = f"refused ({info['refused']})" if "refused" in info else "does not show it"
        raise ProbeError(
            f"maxmemory cannot be read: CONFIG GET refused ({refused}) and INFO memory {why}"
        )
    return int(info["maxmemory"]), str(info["maxmemory_policy"]), f"INFO memory ({refused})"


def memory_policy(profile: Profile) -> Metric:
    """Problems with Redis's memory limit: none set (it grows until the machine runs out
    of memory), or a limit or eviction policy other than `targets.redis` expects."""
    target = profile.targets.redis
    with client(profile) as connection:
        limit, policy, source = _memory_settings(connection)
    expected_limit, expected_policy = target.maxmemory, target.maxmemory_policy
    shown = humanfriendly.format_size(limit, binary=True) if limit else "none"
    problems = []
    if not limit:
        problems.append("no maxmemory set: Redis grows until the machine runs out of memory")
    elif expected_limit is not None and limit != int(expected_limit):
        wanted = humanfriendly.format_size(int(expected_limit), binary=True)
        problems.append(f"maxmemory is {shown}, the profile expects {wanted}")
    if expected_policy is not None and policy != expected_policy:
        problems.append(f"eviction policy is {policy}, the profile expects {expected_policy}")
    table = pd.DataFrame(
        [
            {
                "setting": "maxmemory",
                "actual": shown,
                "expected": "a limit"
                if expected_limit is None
                else humanfriendly.format_size(int(expected_limit), binary=True),
            },
            {"setting": "maxmemory-policy", "actual": policy, "expected": expected_policy or "any"},
        ]
    ).assign(read_with=source)
    summary = "; ".join(problems) or f"maxmemory {shown}, eviction policy {policy}"
    return Metric(len(problems), summary, table)


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


@dataclass(frozen=True)
class Drift:
    """Ids the processing set and the table disagree on: `orphan` (in Redis, row not
    processing) and `lost` (row processing, not in Redis). `listed` names up to `LISTED`
    of each, with `table_state` the row's state by the mapping (queued, processing, or its
    stored status; `missing` without a row); the counts are of all of them."""

    listed: pd.DataFrame
    orphans: int
    lost: int

    @property
    def total(self) -> int:
        return self.orphans + self.lost


def reconciliation(profile: Profile) -> Drift:
    """The processing set against the table. Both sides are read in batches and only the
    first `LISTED` disagreeing ids of each kind are kept, so memory stays flat however
    large the set (SMISMEMBER needs Redis 6.2 or later). An id SSCAN returns twice while
    the set is rehashed is counted once when listed, possibly twice beyond that."""
    queue = QueueTable.of(profile)
    key = profile.queue.redis_keys["processing"]
    with client(profile) as members, queue.reading(profile) as connection:
        kind = members.type(key)
        if kind not in {"set", "none"}:
            raise ProbeError(f"{key} is a {kind}, expected a set")
        orphans, orphan_count = _orphans(
            queue, connection, _batches(members.sscan_iter(key, count=BATCH))
        )
        lost_ids = (
            job
            for ids in _processing_ids(queue, connection)
            for job, present in zip(ids, members.smismember(key, ids), strict=True)
            if not present
        )
        lost, lost_count = _first(lost_ids)
    rows = [(job, "orphan", state) for job, state in orphans.items()]
    rows += [(job, "lost", "processing") for job in lost]
    listed = pd.DataFrame(sorted(rows), columns=["id", "problem", "table_state"])
    return Drift(listed, orphan_count, lost_count)


def still_orphans(profile: Profile, ids: list[str]) -> set[str]:
    """Which of `ids` are orphans now: in the processing set, their row not processing.
    What a fix re-reads before and after it acts, whatever the set's size."""
    queue = QueueTable.of(profile)
    key = profile.queue.redis_keys["processing"]
    with client(profile) as members, queue.reading(profile) as connection:
        present = [
            job
            for batch in _batches(ids)
            for job, found in zip(batch, members.smismember(key, batch), strict=True)
            if found
        ]
        orphans, _count = _orphans(queue, connection, _batches(present))
    return set(orphans)


def _first(ids: Iterable[str]) -> tuple[list[str], int]:
    """The first `LISTED` of `ids`, and how many there were."""
    kept: list[str] = []
    count = 0
    for job in ids:
        count += 1
        if len(kept) < LISTED:
            kept.append(job)
    return kept, count


def _batches(members: Iterable[str]) -> Iterator[list[str]]:
    """`itertools.batched` (Python 3.12) by `BATCH`, for 3.11."""
    iterator = iter(members)
    while batch := list(itertools.islice(iterator, BATCH)):
        yield batch


def _orphans(
    queue: QueueTable, connection: sa.Connection, batches: Iterable[list[str]]
) -> tuple[dict[str, str], int]:
    """member -> its row's state for the first `LISTED` members whose row is not
    processing (a dict: SSCAN may return a member twice while the set grows), and how many
    such members there were."""
    id_column = queue.column("id")
    state = sa.case(
        (queue.state("processing"), "processing"),
        (queue.state("queued"), "queued"),
        else_=sa.cast(queue.state_label(), sa.String) if queue.has("status") else "finished",
    )
    match = id_matcher(queue, connection)
    orphans: dict[str, str] = {}
    count = 0
    for batch in batches:
        query = sa.select(id_column, state).select_from(queue.source).where(match(batch))
        in_table = {str(job): row_state for job, row_state in connection.execute(query).all()}
        for job in batch:
            if in_table.get(job) == "processing" or job in orphans:
                continue
            count += 1
            if len(orphans) < LISTED:
                orphans[job] = in_table.get(job, "missing")
    return orphans, count


def id_matcher(
    queue: QueueTable, connection: sa.Connection
) -> Callable[[list[str]], sa.ColumnElement[bool]]:
    """A condition for the rows whose id, written as text, is one of the members. Ids of
    a type opslib knows are compared as that type (an integer id with an integer, so the
    primary key's index serves; a member that is no such value in its canonical form,
    like "007", has no row); others as text, which reads the whole table per batch."""
    id_column = queue.column("id")
    sample = connection.execute(
        sa.select(id_column).select_from(queue.source).where(id_column.is_not(None)).limit(1)
    ).scalar()
    parse = ID_PARSERS.get(type(sample))
    one_of = _array_one_of if connection.dialect.name == "postgresql" else _list_one_of
    if parse is None:
        return lambda batch: one_of(sa.cast(id_column, sa.String), batch)

    def match(batch: list[str]) -> sa.ColumnElement[bool]:
        values = []
        for member in batch:
            try:
                value = parse(member)
            except ValueError:
                continue
            if str(value) == member:
                values.append(value)
        return one_of(id_column, values)

    return match


def _array_one_of(column: sa.ColumnElement, values: list) -> sa.ColumnElement[bool]:
    """`column = ANY(:values)`: one array parameter, where thousands of separate ones
    cost the driver several times what the query costs the server."""
    return column == sa.any_(untyped(values))


def _list_one_of(column: sa.ColumnElement, values: list) -> sa.ColumnElement[bool]:
    """`column IN (:v1, :v2, ...)`, for SQLite, which has no arrays."""
    return column.in_(untyped(values, expanding=True))


def _processing_ids(queue: QueueTable, connection: sa.Connection) -> Iterator[list[str]]:
    """The ids of the processing rows, `BATCH` at a time in id order: each page is its own
    short statement, starting past the last id of the page before."""
    id_column = queue.column("id")
    page = (
        sa.select(id_column)
        .select_from(queue.source)
        .where(queue.state("processing"))
        .order_by(id_column)
        .limit(BATCH)
    )
    query = page
    while rows := connection.execute(query).scalars().all():
        yield [str(job) for job in rows]
        if len(rows) < BATCH:
            return
        query = page.where(id_column > untyped(rows[-1]))


def processing_drift(profile: Profile) -> Metric:
    """How many ids the processing set and the queue table disagree on."""
    drift = reconciliation(profile)
    if not drift.total:
        return Metric(0, "the processing set matches the table")
    shown = f" (the first {LISTED:,} of each listed)" if len(drift.listed) < drift.total else ""
    return Metric(
        drift.total,
        f"{drift.orphans} orphan(s) in Redis, {drift.lost} row(s) processing but absent "
        f"from Redis{shown}",
        drift.listed,
    )
