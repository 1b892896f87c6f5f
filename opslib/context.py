"""Who is running what, where, from which commit: the facts an audit record, a ledger
row and a diagnostic package carry.

The runner passes them to the kernel through environment variables; opened by hand in
JupyterLab the same code falls back to the interactive user and no run id.
"""

from __future__ import annotations

import getpass
import os
import socket
import subprocess
from dataclasses import dataclass

from opslib import paths

INTERACTIVE = "interactive"  # the run id of code run by hand, not by `opslib run`


@dataclass(frozen=True)
class RunContext:
    runbook: str
    profile: str
    run_id: str
    os_user: str
    by: str
    host: str

    @classmethod
    def current(cls, runbook: str, profile: str) -> RunContext:
        return cls(
            runbook=runbook,
            profile=profile,
            run_id=os.environ.get("OPSLIB_RUN_ID", INTERACTIVE),
            os_user=getpass.getuser(),
            by=os.environ.get("OPSLIB_RUN_BY", ""),
            host=socket.gethostname(),
        )


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", *args],
        cwd=paths.project_root(),
        capture_output=True,
        text=True,
        timeout=5,
        check=True,
    ).stdout.strip()


def git_sha() -> str | None:
    """The project's commit, `+dirty` when the tree has changes; None outside git."""
    try:
        sha = _git("rev-parse", "--short=12", "HEAD")
        dirty = _git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{sha}+dirty" if dirty else sha
