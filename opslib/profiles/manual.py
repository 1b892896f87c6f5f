"""The operations manual a profile carries out (`manual:`): where it is, where its
coverage map is, and its index turned into commands.

At 3 AM someone holds one pipeline's manual, not opslib's catalogue of procedures.
`symptoms` maps what the manual calls a problem ("queue not processing", "costs too
high") to the runbook to open; `commands` maps the manual's quick-command aliases
(`queuedepth`, `todaycost`) to the opslib command line that does the same. `opslib
manual PROFILE` prints both with each runbook's last state and schedule. Runbook names
are checked where runbooks are known (the command and the tests), not here: profiles
sit below the notebooks.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StringConstraints

from opslib.profiles.fields import StrictModel

RunbookName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]*$")]


class Manual(StrictModel):
    """`source`: the manual's file (as the team knows it, e.g. video-render-pipeline.md);
    `coverage`: its coverage map in this project (docs/manuals/<pipeline>.md), one row per
    item of the manual with what carries it out; `symptoms` and `commands` as above."""

    source: str
    coverage: str | None = None
    symptoms: Annotated[dict[str, RunbookName], Field(min_length=1)]
    commands: dict[str, str] = {}
