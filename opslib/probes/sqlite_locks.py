"""Who holds which lock on a SQLite database, read from `/proc/locks` without opening it.

SQLite locks are POSIX byte-range locks at fixed offsets of the database file (rollback
journal mode) and of its `-shm` file (WAL mode). The kernel lists every such lock with
the owner's pid and the file's device and inode, so matching those against the database's
files names each holder and which SQLite lock it has. This never opens the database:
closing a descriptor on it would drop any POSIX lock *this* process holds, and a probe
must not be able to break the pipeline it watches.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from opslib.probes import Metric, ProbeError, TargetUnreachable, processes
from opslib.profiles import Profile

PROC_LOCKS = Path("/proc/locks")

# Database file (see SQLite's os.h): one byte each for PENDING and RESERVED, then 510
# bytes of which a reader locks one or all (SHARED) and a writer all (EXCLUSIVE).
PENDING_BYTE = 0x40000000
RESERVED_BYTE = PENDING_BYTE + 1
SHARED_FIRST = PENDING_BYTE + 2
SHARED_LAST = SHARED_FIRST + 510 - 1
# WAL index (-shm): write, checkpoint and recovery locks, five read marks, then the
# byte every open connection holds shared while it has the WAL open.
SHM_WRITE, SHM_CHECKPOINT, SHM_RECOVER = 120, 121, 122
SHM_READ_FIRST, SHM_READ_LAST = 123, 127
SHM_OPEN = 128

# Strongest first. Writers: at most one process holds any of the first four.
STRENGTH = ("EXCLUSIVE", "PENDING", "RESERVED", "WAL write", "checkpoint", "SHARED", "WAL read")
SUFFIXES = ("", "-journal", "-wal", "-shm")


@dataclass(frozen=True)
class HeldLock:
    """One SQLite lock the kernel lists; pid 0 is a process outside this pid namespace."""

    pid: int
    lock: str


def database_files(database: Path) -> list[Path]:
    """The database and the journal, WAL and shared-memory files SQLite keeps beside it."""
    return [database.with_name(database.name + suffix) for suffix in SUFFIXES]


def _identity(path: Path) -> tuple[int, int, int] | None:
    try:
        status = path.stat()
    except OSError:
        return None
    return os.major(status.st_dev), os.minor(status.st_dev), status.st_ino


def _overlaps(start: int, end: int, first: int, last: int) -> bool:
    return start <= last and end >= first


def _database_lock(write: bool, start: int, end: int) -> str | None:
    if _overlaps(start, end, SHARED_FIRST, SHARED_LAST):
        return "EXCLUSIVE" if write else "SHARED"
    if write and _overlaps(start, end, PENDING_BYTE, PENDING_BYTE):
        return "PENDING"
    if write and _overlaps(start, end, RESERVED_BYTE, RESERVED_BYTE):
        return "RESERVED"
    return None


def _shm_lock(write: bool, start: int, end: int) -> str | None:
    if write and _overlaps(start, end, SHM_WRITE, SHM_WRITE):
        return "WAL write"
    if _overlaps(start, end, SHM_CHECKPOINT, SHM_RECOVER):
        return "checkpoint"
    if _overlaps(start, end, SHM_READ_FIRST, SHM_READ_LAST):
        return "WAL read"
    return None  # the open-connection byte alone is no lock anyone waits on


def held_locks(database: Path, proc_locks: str | None = None) -> list[HeldLock]:
    """Every SQLite lock on `database` (and its `-shm`) that `/proc/locks` (or the text
    given in its format) lists."""
    files = {
        identity: kind
        for kind, path in (("db", database), ("shm", database_files(database)[3]))
        if (identity := _identity(path)) is not None
    }
    try:
        text = proc_locks if proc_locks is not None else PROC_LOCKS.read_text()
    except OSError as exc:
        raise ProbeError(f"cannot read {PROC_LOCKS}: {exc.strerror}") from None
    found = []
    for line in text.splitlines():
        fields = line.split()
        # "1: POSIX  ADVISORY  WRITE 12067 fe:00:2146319 1073741824 EOF"; a waiter's
        # line starts with "1: ->" and holds nothing yet; open-file-description locks
        # (not SQLite's) show pid -1, a holder in another pid namespace pid 0.
        if len(fields) < 8 or fields[1] != "POSIX" or int(fields[4]) < 0:
            continue
        major, minor, inode = fields[5].split(":")
        kind = files.get((int(major, 16), int(minor, 16), int(inode)))
        if kind is None:
            continue
        start = int(fields[6])
        end = (1 << 63) if fields[7] == "EOF" else int(fields[7])
        decode = _database_lock if kind == "db" else _shm_lock
        lock = decode(fields[3] == "WRITE", start, end)
        if lock is not None:
            found.append(HeldLock(int(fields[4]), lock))
    return found


def _role(command: str, profile: Profile) -> str:
    """`stage NAME` for a pipeline stage, `reader` for a known competitor, else `other`."""
    if profile.stages is not None:
        for name, stage in profile.stages.steps.items():
            if stage.process and processes.first_match(command, [stage.process]):
                return f"stage {name}"
    if processes.first_match(command, profile.processes.readers):
        return "reader"
    return "other"


def _blocks(lock: str, role: str, committing: set[int]) -> str:
    """Whom this holder keeps waiting; a stage's own lock is the pipeline working.
    `committing` are the other processes holding PENDING or EXCLUSIVE."""
    if role.startswith("stage"):
        return ""
    if lock in {"EXCLUSIVE", "PENDING"}:
        return "every reader and writer"
    if lock in {"RESERVED", "WAL write"}:
        return "every other writer"
    if lock == "SHARED" and committing:
        return f"the writer waiting to commit (pid {', '.join(map(str, sorted(committing)))})"
    return ""


def scan(profile: Profile) -> pd.DataFrame:
    """One row per process that has the database or its companion files open or locked:
    its strongest lock, role, whom it blocks, user, age, CPU time and command line.
    `attrs["unseen"]` counts processes whose open files could not be read (not root)."""
    database = profile.database_path()
    if not database.exists():  # nobody holds a file that is not there: that is no "all clear"
        raise TargetUnreachable(f"no database file at {database}")
    locks = held_locks(database)
    opened = processes.open_by(database_files(database))
    by_pid: dict[int, list[str]] = {}
    for held in locks:
        by_pid.setdefault(held.pid, []).append(held.lock)
    committing = {held.pid for held in locks if held.lock in {"PENDING", "EXCLUSIVE"}}
    rows = []
    for pid in sorted(set(by_pid) | set(opened.holders)):
        if pid == os.getpid():
            continue
        info = processes.describe(pid) if pid else processes.OUTSIDE
        if info is None:
            continue
        held = sorted(set(by_pid.get(pid, [])), key=STRENGTH.index)
        lock = held[0] if held else "none (open)"
        role = _role(info.command, profile)
        rows.append(
            {
                "pid": pid,
                "lock": lock,
                "role": role,
                "blocks": _blocks(lock, role, committing - {pid}),
                "user": info.user,
                "age_s": None if info.age_s is None else round(info.age_s),
                "cpu_s": None if info.cpu_s is None else round(info.cpu_s, 1),
                "started": info.started,
                "files": ", ".join(sorted(path.name for path in opened.holders.get(pid, set())))
                or database.name,
                "command": info.command,
                "brief": info.brief,
            }
        )
    columns = ["pid", "lock", "role", "blocks", "user", "age_s", "cpu_s", "started", "files"]
    table = pd.DataFrame(rows, columns=[*columns, "command", "brief"])
    table.attrs["unseen"] = opened.unseen
    return table


def _unseen_note(holders: pd.DataFrame) -> str:
    """What this scan cannot see: other users' processes without root, and everything
    outside the container opslib runs in."""
    notes = []
    if holders.attrs.get("unseen"):
        notes.append(f"{holders.attrs['unseen']} process(es) could not be looked at: run as root")
    if processes.in_container():
        notes.append("opslib runs in its own pid namespace: processes outside it are not seen")
    return f" ({'; '.join(notes)})" if notes else ""


def describe_holders(holders: pd.DataFrame) -> str:
    """`pid 123 (python hold.py) holds EXCLUSIVE` for each locking process, for one line."""
    locking = holders[holders["lock"] != "none (open)"] if not holders.empty else holders
    if locking.empty:
        return "no process visible from here holds a lock on it now" + _unseen_note(holders)
    return "; ".join(
        f"pid {row.pid} ({row.brief}) holds {row.lock}"
        + (f", blocking {row.blocks}" if row.blocks else "")
        for row in locking.itertuples()
    )


def _shown(holders: pd.DataFrame) -> pd.DataFrame:
    return holders.drop(columns=["started", "brief"])


def blocking_holders(profile: Profile) -> Metric:
    """Processes other than the pipeline's stages whose lock keeps someone waiting."""
    holders = scan(profile)
    blocking = holders[holders["blocks"] != ""]
    if holders.empty:
        summary = f"no process has {profile.database_path().name} open"
    elif blocking.empty:
        summary = f"{len(holders)} process(es) have it open, none blocks the pipeline"
    else:
        summary = describe_holders(blocking)
    return Metric(len(blocking), summary + _unseen_note(holders), _shown(holders))


def competing_processes(profile: Profile) -> Metric:
    """Processes other than the pipeline's stages that have the database open at all:
    before a large run, the manual wants none (in rollback mode a reader stalls commits)."""
    holders = scan(profile)
    others = holders[~holders["role"].str.startswith("stage")]
    if others.empty:
        summary = (
            "only the pipeline's stages have it open"
            if not holders.empty
            else f"no process has {profile.database_path().name} open"
        )
    else:
        summary = (
            f"{len(others)} process(es) besides the pipeline have {profile.database_path().name} "
            f"open: {', '.join(f'pid {row.pid} ({row.role})' for row in others.itertuples())}"
        )
    return Metric(len(others), summary + _unseen_note(holders), _shown(others))


def explain_locked(profile: Profile, error: TargetUnreachable) -> TargetUnreachable:
    """A locked SQLite database's reason with the processes holding the lock named, for
    every check that found it locked (the run hands this to the connection layer)."""
    if "locked" not in error.reason or not profile.provides("sqlite"):
        return error
    try:
        holders = describe_holders(scan(profile))
    except (ProbeError, OSError):
        return error
    return TargetUnreachable(f"{error.reason}: {holders}")
