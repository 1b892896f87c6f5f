"""Before a large run: end every reader of the SQLite database, not only one that already
blocks a writer (the spots manual's mandatory pre-pipeline checklist).

`ReleaseSqliteLock` releases the holders that keep a stage waiting now; before a run
nobody is waiting yet, and an idle datasette or sqlite3 shell is exactly what will hold
the first commit up. The plan names each process besides the stages that has the file
open, by pid and start time; only those matching `processes.terminable` are signalled,
and apply checks afterwards that none of them still has the file open.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import pandas as pd

from opslib.actions.sqlite_locks import ReleaseSqliteLock


@dataclass
class ReleaseReaders(ReleaseSqliteLock):
    """SIGTERM every process besides the stages with the database open (or only `pid`),
    provided it is on the terminable allowlist: exclusive access for the run."""

    needs: ClassVar[str] = "sqlite"

    @property
    def name(self) -> str:
        return "release_readers"

    def _chosen(self, holders: pd.DataFrame) -> pd.DataFrame:
        if self.pid or holders.empty:
            return super()._chosen(holders)
        return holders[~holders["role"].str.startswith("stage")]
