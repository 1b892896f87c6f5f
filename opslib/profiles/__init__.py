"""Profiles: what pipeline to operate, validated, with secrets resolved only at use time.

A profile is `parameters/profiles/<name>.yaml` (or any YAML path). Values may hold
`${VAR}` or `${VAR:-default}` references; they stay unresolved in the model and are
expanded by `Profile.expand` when a probe needs them, so a notebook or a report only
ever sees the profile's *name*.

The schema is in `targets` (what opslib measures), `sections` (the pipeline's tables,
files and stages), `channels` (notifications) and `profile` (the whole, with accessors);
`needs` says what a profile provides, `loading` finds and validates one, `secrets`
resolves `${VAR}` and masks what was resolved.
"""

from opslib.profiles.channels import Channel, Notify
from opslib.profiles.loading import available_profiles, default_profile_name, load_profile
from opslib.profiles.profile import Profile
from opslib.profiles.sections import Duration, Queue

__all__ = [
    "Channel",
    "Duration",
    "Notify",
    "Profile",
    "Queue",
    "available_profiles",
    "default_profile_name",
    "load_profile",
]
