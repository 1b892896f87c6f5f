"""The one clock: every time opslib stores or compares is naive UTC, and the strptime
formats a timestamp may be written in.

Queue tables, the ledger, log windows and plan ages all read the time from here, so no
part compares a local time with a UTC one, or an aware time with a naive one.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime


def utc_now() -> datetime:
    """Now, as naive UTC."""
    return datetime.now(UTC).replace(tzinfo=None)


def naive_utc(moment: datetime) -> datetime:
    """`moment` as naive UTC: converted when it has a zone, taken as UTC when it has none."""
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment


@dataclass(frozen=True)
class Deadline:
    """A moment on the monotonic clock a whole command must end by. Each stage (waiting
    for a lock, the kernel, the ledger) is given what is left, so time spent waiting in one
    is not handed out again to the next."""

    at: float

    @classmethod
    def after(cls, seconds: float) -> Deadline:
        return cls(time.monotonic() + seconds)

    def left(self, floor: float = 0.0) -> float:
        """Seconds until the deadline, never below `floor`."""
        return max(floor, self.at - time.monotonic())


def process_age_s() -> float:
    """Seconds since this process started, from the kernel's clock ticks since boot
    (psutil's wall-clock start time is rounded to the boot second); 0 off Linux."""
    try:
        with open("/proc/uptime") as uptime:
            uptime_s = float(uptime.read().split()[0])
        with open("/proc/self/stat") as stat:
            # the start time is field 22; the command name before it may hold spaces
            fields = stat.read().rsplit(")", 1)[1].split()
        return max(0.0, uptime_s - int(fields[19]) / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return 0.0


# strptime directives a timestamp format may use, as regular expressions
_DIRECTIVES = {
    "%Y": r"\d{4}", "%y": r"\d{2}", "%m": r"\d{1,2}", "%d": r"\d{1,2}", "%j": r"\d{3}",
    "%H": r"\d{1,2}", "%I": r"\d{1,2}", "%M": r"\d{2}", "%S": r"\d{2}", "%f": r"\d{1,6}",
    "%p": r"(?:AM|PM)", "%b": r"[A-Za-z]{3}", "%a": r"[A-Za-z]{3}", "%z": r"(?:Z|[+-]\d{2}:?\d{2})",
    "%%": "%",
}  # fmt: skip


def strptime_regex(format_: str) -> str:
    """The regular expression matching timestamps written with strptime `format_`;
    a directive outside `_DIRECTIVES` is a ValueError naming it."""
    pieces = []
    for part in re.split(r"(%.)", format_):
        if part.startswith("%"):
            if part not in _DIRECTIVES:
                raise ValueError(f"timestamp format {format_!r}: {part} is not supported")
            pieces.append(_DIRECTIVES[part])
        else:
            pieces.append(re.escape(part))
    return "".join(pieces)
