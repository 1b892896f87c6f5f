"""One run of a runbook per profile at a time.

The overlap lock is an `flock` on `reports/.locks/<runbook>--<profile>.lock`: the kernel
drops it when the holder dies, even by `kill -9`, so a crashed run never blocks the next.
When the archive cannot take the lock file (read-only, full), the lock lives in a private
folder under the system's temporary directory instead: the run still happens, and still
alone, so its results reach the monitoring system even though its report cannot be kept.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from opslib.errors import OpslibError, RunInProgress

_POLL_S = 0.2


@contextlib.contextmanager
def overlap_lock(
    lock_dir: Path, runbook: str, profile: str, *, wait_s: float = 0.0
) -> Iterator[None]:
    """Hold the lock for the body. A second run refuses at once, or after waiting up to
    `wait_s` for the first to finish: a queued cron job must not wait forever either."""
    give_up = time.monotonic() + wait_s
    with _lock_file(lock_dir, f"{runbook}--{profile}.lock") as handle:
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= give_up:
                    handle.seek(0)
                    holder = handle.read().strip() or "unknown"
                    waited = f" after waiting {wait_s:.1f} s" if wait_s else ""
                    raise RunInProgress(
                        f"{runbook} is already running for profile {profile} (pid {holder}); "
                        f"not starting a second run{waited}"
                        + ("" if wait_s else " (use --wait to queue behind it)")
                    ) from None
                time.sleep(_POLL_S)
        _name_holder(handle)
        try:
            yield
        finally:
            handle.truncate(0)
            fcntl.flock(handle, fcntl.LOCK_UN)


def _name_holder(handle: IO[str]) -> None:
    """Write our pid into the lock file for a refused run to name; on a full disk the
    lock holds without it (the refusal then says the holder is unknown)."""
    descriptor = handle.fileno()  # unbuffered, so a refused write is not retried at close
    os.ftruncate(descriptor, 0)
    with contextlib.suppress(OSError):
        os.pwrite(descriptor, str(os.getpid()).encode(), 0)


def _lock_file(lock_dir: Path, name: str) -> IO[str]:
    """The lock file in `lock_dir`, or in a private stand-in for it when the archive
    refuses to hold one."""
    try:
        lock_dir.mkdir(parents=True, exist_ok=True)
        return open(lock_dir / name, "a+")
    except OSError:
        private = Path(tempfile.gettempdir()) / f"opslib-locks-{os.getuid()}"
        private.mkdir(mode=0o700, exist_ok=True)
        # checked before anything is made in it: another user could have planted it
        if private.is_symlink() or private.stat().st_uid != os.getuid():
            raise OpslibError(f"cannot take the run lock: {private} is not ours") from None
        stand_in = private / hashlib.sha256(str(lock_dir).encode()).hexdigest()[:12]
        stand_in.mkdir(mode=0o700, exist_ok=True)
        return open(stand_in / name, "a+")
