"""One run of a runbook per profile at a time.

The overlap lock is an `flock` on `reports/.locks/<runbook>--<profile>.lock`: the kernel
drops it when the holder dies, even by `kill -9`, so a crashed run never blocks the next.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path

from opslib.errors import RunInProgress

_POLL_S = 0.2


@contextlib.contextmanager
def overlap_lock(
    lock_dir: Path, runbook: str, profile: str, *, wait_s: float = 0.0
) -> Iterator[None]:
    """Hold the lock for the body. A second run refuses at once, or after waiting up to
    `wait_s` for the first to finish: a queued cron job must not wait forever either."""
    lock_dir.mkdir(parents=True, exist_ok=True)
    path = lock_dir / f"{runbook}--{profile}.lock"
    give_up = time.monotonic() + wait_s
    with open(path, "a+") as handle:
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= give_up:
                    handle.seek(0)
                    holder = handle.read().strip() or "unknown"
                    waited = f" after waiting {wait_s:g} s" if wait_s else ""
                    raise RunInProgress(
                        f"{runbook} is already running for profile {profile} (pid {holder}); "
                        f"not starting a second run{waited}"
                        + ("" if wait_s else " (use --wait to queue behind it)")
                    ) from None
                time.sleep(_POLL_S)
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        try:
            yield
        finally:
            handle.truncate(0)
            fcntl.flock(handle, fcntl.LOCK_UN)
