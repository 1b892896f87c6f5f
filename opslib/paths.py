"""Where things live: the project tree, the data dir and the report archive.

Every location can be moved with an environment variable so tests and cron jobs do not
have to run from the source tree. Relative values are taken from the current directory;
the CLI makes them absolute before a kernel (whose cwd is the project root) inherits them.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path


def project_root() -> Path:
    """The tree holding notebooks/, parameters/ and (by default) reports/."""
    return Path(os.environ.get("OPSLIB_HOME") or Path(__file__).resolve().parent.parent).absolute()


def notebooks_dir() -> Path:
    return project_root() / "notebooks"


def profiles_dir() -> Path:
    return project_root() / "parameters" / "profiles"


def data_dir() -> Path:
    """Runtime data that is not an archive (the demo pipeline); git-ignored."""
    return Path(os.environ.get("OPSLIB_DATA_DIR") or project_root() / "data").absolute()


def reports_dir() -> Path:
    """The archive the runner writes; `opslib run --reports DIR` sets OPSLIB_REPORTS_DIR."""
    return Path(os.environ.get("OPSLIB_REPORTS_DIR") or project_root() / "reports").absolute()


def resolve_path(raw: str | os.PathLike[str]) -> Path:
    """A profile path: absolute as written, relative ones from the project root."""
    path = Path(raw).expanduser()
    return path if path.is_absolute() else project_root() / path


GROUP_ACCESS_VARIABLE = "OPSLIB_GROUP_ACCESS"


def keep_new_files_private() -> None:
    """Create everything from here on owner-only (files 0600, folders 0700): reports,
    the ledger, backups and diagnostic packages hold what the pipeline holds. With
    OPSLIB_GROUP_ACCESS=1 the group may read them too (0640/0750), for a team that reads
    one archive under a shared group. Child processes (the kernel, pg_dump) inherit it."""
    os.umask(0o027 if group_access_allowed() else 0o077)


def group_access_allowed() -> bool:
    """Whether OPSLIB_GROUP_ACCESS asks for the archive to be readable by the group."""
    return os.environ.get(GROUP_ACCESS_VARIABLE, "").strip().lower() in {"1", "true", "yes"}


LOCATION_VARIABLES = ("OPSLIB_HOME", "OPSLIB_DATA_DIR", "OPSLIB_REPORTS_DIR")


def absolutize_environment() -> None:
    """Make relative location variables absolute, for child processes with another cwd."""
    for name in LOCATION_VARIABLES:
        if os.environ.get(name):
            os.environ[name] = str(Path(os.environ[name]).absolute())


def shown(path: Path, base: Path | None = None) -> str:
    """A path as a person reads it: relative to `base` (the current directory unless
    given) when inside it, even through a symlink; as given otherwise."""
    base = base or Path.cwd()
    for candidate, root in ((path, base), (path.resolve(), base.resolve())):
        if candidate.is_relative_to(root):
            return str(candidate.relative_to(root))
    return str(path)


# files other services read under their own user (node_exporter's textfile, Airflow's DAG
# folder, kubectl): they hold no secret, and the owner-only umask would lock them out
SHARED_MODE = 0o644


def replace_atomically(
    target: Path, write: Callable[[Path], object], *, mode: int | None = None
) -> Path:
    """Have `write` fill a temporary file beside `target`, then swap it in: whoever reads
    `target` meanwhile (cron, an engine, the next scan) sees the old file or the new one,
    never half of either. The temporary file is gone afterwards, whatever happened."""
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    temporary.unlink(missing_ok=True)
    try:
        write(temporary)
        if mode is not None:
            os.chmod(temporary, mode)
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)
    return target


def write_atomically(target: Path, text: str, *, mode: int | None = None) -> Path:
    """Write `text` (UTF-8) to `target` whole or not at all (see `replace_atomically`)."""
    return replace_atomically(
        target, lambda temporary: temporary.write_text(text, encoding="utf-8"), mode=mode
    )
