"""Who is running what, where: the facts an audit record and a ledger row carry.

The runner passes them to the kernel through environment variables; opened by hand in
JupyterLab the same code falls back to the interactive user and no run id.
"""

from __future__ import annotations

import getpass
import os
import socket
from dataclasses import dataclass

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
