"""Demos: each pipeline's story, planted where its profile looks, so every runbook has
something to find on a fresh machine.

`DEMOS` is the table `opslib demo PIPELINE` reads. A demo of local files (`create`,
`present`) writes under the data folder and is left alone while it is fresh; a demo that
seeds the profile's own database (`seed`, `where`) writes only into a database it created
itself (see `demo.tables`).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

from opslib import paths


@dataclass(frozen=True)
class Demo:
    """One pipeline's demo: the module that makes it, and whether it seeds the database
    (and Redis, logs) a profile points at rather than a folder of its own."""

    module: str
    description: str
    seeds_profile: bool = False

    def make(self, name: str, profile_name: str | None, *, if_stale: bool) -> str | None:
        """Create (or seed) the demo; a sentence saying where, or None when a fresh one
        was already there and `if_stale` asked to keep it."""
        from opslib.profiles import load_profile

        module = importlib.import_module(self.module)
        if self.seeds_profile:
            profile = load_profile(profile_name or name)
            profile.resolve_all()
            planted = module.seed(profile)
            return f"{name} demo seeded into {module.where(profile)}; planted: {planted}"
        if if_stale and module.present():
            return None
        created = module.create()
        _record_schema(profile_name or name, created if created.is_dir() else created.parent)
        return f"{name} pipeline created in {paths.shown(created)}"


def _record_schema(profile_name: str, folder: Path) -> None:
    """A SQLite demo starts with its schema recorded as the baseline `schema_drift`
    compares with, as a team would record theirs once: the check then has a meaning on a
    fresh machine instead of asking for a baseline first. Only a database the demo just
    wrote into `folder`: a profile pointing elsewhere is never touched."""
    from opslib.actions.schema import RecordSchemaBaseline
    from opslib.profiles import load_profile

    profile = load_profile(profile_name)
    if profile.provides("sqlite") and profile.database_path().is_relative_to(folder):
        recorder = RecordSchemaBaseline(profile)
        recorder.apply(recorder.plan())


DEMOS = {
    "demo": Demo("opslib.demo.builtin", "a SQLite job queue and its log (the default)"),
    "spots": Demo("opslib.demo.spots", "the spots pipeline's production.db and stage logs"),
    "catalog": Demo("opslib.demo.catalog", "the catalog sync folder: summaries, logs, config"),
    "mediaplan": Demo("opslib.demo.mediaplan", "the media-plan folders of .xlsx workbooks"),
    "video": Demo("opslib.demo.video", "seeds the profile's PostgreSQL and Redis", True),
    "ideas": Demo("opslib.demo.ideas", "seeds the profile's PostgreSQL and log folder", True),
}
