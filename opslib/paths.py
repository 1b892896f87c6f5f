"""Where things live: the project tree, the data dir and the report archive.

Every location can be moved with an environment variable so tests, cron jobs and
object-storage deployments do not have to run from the source tree.
"""

from __future__ import annotations

import os
from pathlib import Path


def project_root() -> Path:
    """The tree holding notebooks/, parameters/ and (by default) reports/."""
    return Path(os.environ.get("OPSLIB_HOME") or Path(__file__).resolve().parent.parent)


def notebooks_dir() -> Path:
    return project_root() / "notebooks"


def profiles_dir() -> Path:
    return project_root() / "parameters" / "profiles"


def data_dir() -> Path:
    """Runtime data that is not an archive (the demo pipeline); git-ignored."""
    return Path(os.environ.get("OPSLIB_DATA_DIR") or project_root() / "data")


def reports_dir() -> Path:
    """The archive the runner writes; `opslib run --reports DIR` sets OPSLIB_REPORTS_DIR."""
    return Path(os.environ.get("OPSLIB_REPORTS_DIR") or project_root() / "reports")


def resolve_path(raw: str | os.PathLike[str]) -> Path:
    """A profile path: absolute as written, relative ones from the project root."""
    path = Path(raw).expanduser()
    return path if path.is_absolute() else project_root() / path
