"""Processes on this machine: who has a file open, what they are, and targeted signals.

Everything here reads `/proc` (through psutil where it can) and never opens the files it
asks about: opening and closing a SQLite database in this process would drop any POSIX
lock this process holds on it. A process is identified by its pid *and* its start time,
so a signal planned for one process can never reach another that reused its pid.
"""

from __future__ import annotations

import os
import re
import signal
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import psutil

from opslib.profiles.secrets import command_line

PROC = Path("/proc")


@dataclass(frozen=True)
class ProcessInfo:
    """What a report shows about a process, read once."""

    pid: int
    user: str
    command: str
    started: float | None  # epoch seconds, with the pid the process's identity; None: unknown
    cpu_s: float | None  # user + system CPU seconds since it started

    @property
    def brief(self) -> str:
        """The command line for one line of text: program and script by name, shortened."""
        words = [Path(word).name if "/" in word else word for word in self.command.split()[:6]]
        text = " ".join(words)
        return text if len(text) <= 70 else text[:69] + "…"

    @property
    def age_s(self) -> float | None:
        return None if self.started is None else max(0.0, time.time() - self.started)


# the kernel's fixed inode number of the initial pid namespace (PROC_PID_INIT_INO)
_INITIAL_PID_NAMESPACE = "pid:[4026531836]"


def in_container() -> bool:
    """Whether this process runs in its own pid namespace: processes outside it, and the
    locks they hold, are then invisible in /proc."""
    try:
        return os.readlink("/proc/self/ns/pid") != _INITIAL_PID_NAMESPACE
    except OSError:
        return False


# a lock /proc/locks lists with pid 0: its owner lives in another pid namespace (container)
OUTSIDE = ProcessInfo(0, "?", "(a process outside this pid namespace)", None, None)


def describe(pid: int) -> ProcessInfo | None:
    """The process's user, command line, start and CPU time; None once it has gone."""
    try:
        process = psutil.Process(pid)
        with process.oneshot():
            cpu = process.cpu_times()
            command = command_line(" ".join(process.cmdline())) or f"[{process.name()}]"
            return ProcessInfo(
                pid, process.username(), command, process.create_time(), cpu.user + cpu.system
            )
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return None
    except psutil.AccessDenied:
        return ProcessInfo(pid, "?", "?", None, None)


def first_match(command: str, patterns: Iterable[str]) -> str | None:
    """The first regex in `patterns` found in the command line, or None."""
    return next((pattern for pattern in patterns if re.search(pattern, command)), None)


def matching(patterns: Iterable[str]) -> list[ProcessInfo]:
    """Every running process (other than this one) whose command line matches a pattern,
    leaving out wrappers (`sh -c`, nohup, cron) whose own descendant matches too: the
    wrapper only waits, and would otherwise look like a hung copy of its child."""
    patterns = list(patterns)
    found = {}
    for pid in psutil.pids():
        if pid == os.getpid():
            continue
        info = describe(pid)
        if info is not None and first_match(info.command, patterns):
            found[pid] = info
    return [info for pid, info in found.items() if not _descendants(pid) & found.keys()]


def _descendants(pid: int) -> set[int]:
    try:
        return {child.pid for child in psutil.Process(pid).children(recursive=True)}
    except psutil.Error:
        return set()


@dataclass
class OpenFiles:
    """Which processes hold the files open, and how many processes could not be looked at
    (their descriptors are unreadable without root): a nonzero `unseen` means the answer
    may be incomplete."""

    holders: dict[int, set[Path]]
    unseen: int


def open_by(files: Iterable[Path]) -> OpenFiles:
    """Which processes hold an open descriptor on any of `files` (by resolved path).

    Reads the `/proc/<pid>/fd` links only: no file is opened, nothing blocks.
    """
    wanted = {str(Path(file).resolve()): Path(file) for file in files}
    holders: dict[int, set[Path]] = {}
    unseen = 0
    for entry in os.scandir(PROC):
        if not entry.name.isdigit():
            continue
        try:
            descriptors = os.scandir(f"{entry.path}/fd")
        except FileNotFoundError:
            continue  # exited meanwhile
        except OSError:
            unseen += 1
            continue
        with descriptors:
            for descriptor in descriptors:
                try:
                    target = os.readlink(descriptor.path)
                except OSError:
                    continue
                if target in wanted:
                    holders.setdefault(int(entry.name), set()).add(wanted[target])
    return OpenFiles(holders, unseen)


def cpu_percent(pids: Iterable[int], window_s: float) -> dict[int, float]:
    """CPU use of each process over one shared window (100 = one full core)."""
    processes = {}
    for pid in pids:
        try:
            process = psutil.Process(pid)
            process.cpu_percent(None)
            processes[pid] = process
        except psutil.Error:
            continue
    if processes:
        time.sleep(window_s)
    measured = {}
    for pid, process in processes.items():
        try:
            measured[pid] = process.cpu_percent(None)
        except psutil.Error:
            continue
    return measured


def resident_bytes(pids: Iterable[int]) -> dict[int, int]:
    """Resident memory (RSS) of each process still there and readable, by pid."""
    measured = {}
    for pid in pids:
        try:
            measured[pid] = psutil.Process(pid).memory_info().rss
        except psutil.Error:
            continue
    return measured


def is_same(pid: int, started: float) -> bool:
    """Whether `pid` is still the process that started at `started` (not a reuse)."""
    info = describe(pid)
    return info is not None and info.started is not None and abs(info.started - started) < 0.01


def send(pid: int, started: float, signal_name: str, wait_s: float) -> str:
    """Send SIGTERM or SIGKILL to exactly that process and wait up to `wait_s` for it to
    exit; returns what happened: `exited`, `still running`, `not permitted` or `gone
    before the signal`."""
    if not is_same(pid, started):
        return "gone before the signal"
    try:
        process = psutil.Process(pid)
        process.send_signal(getattr(signal, signal_name))
        process.wait(timeout=wait_s)
    except psutil.NoSuchProcess:
        return "exited"
    except psutil.AccessDenied:
        return "not permitted"
    except psutil.TimeoutExpired:
        return "still running"
    return "exited"
