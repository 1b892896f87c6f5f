"""Files a pipeline writes (cycle summaries, exports, configs, logs): are they there, are
they fresh, do they parse, and how fast do they grow. One metric per file set, so one bad
file is named while the rest of its set is still reviewed."""

from __future__ import annotations

import glob
import hashlib
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import humanfriendly
import jsonschema
import pandas as pd

from opslib import paths
from opslib.probes import Metric, NotApplicable
from opslib.profiles import Profile
from opslib.status import Status

MAX_JSON_BYTES = 50 * 2**20  # a summary or a config, not a data dump


def matched(profile: Profile, name: str) -> list[Path]:
    """The files of set `name`, oldest first; a set the profile does not declare makes
    the step not apply to it (a runbook's default set, on another pipeline)."""
    if name not in profile.files:
        known = ", ".join(profile.files) or "none"
        raise NotApplicable(f"no file set {name!r} under files: (known: {known})")
    found = [Path(match) for match in glob.glob(profile.file_glob(name)) if Path(match).is_file()]
    return sorted(found, key=lambda path: (path.stat().st_mtime, path.name))


def _nothing(profile: Profile, name: str) -> Metric:
    return Metric(
        None, f"no file matches {profile.file_glob(name)}", label=name, verdict=Status.CRITICAL
    )


def read_json(path: Path, schema: dict[str, Any] | None) -> tuple[Any, str]:
    """The parsed document and '' — or None and why it is not acceptable."""
    if path.stat().st_size > MAX_JSON_BYTES:
        return None, f"larger than {humanfriendly.format_size(MAX_JSON_BYTES)}, not read"
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        return None, f"not valid JSON: {exc}"
    if schema is not None:
        error = jsonschema.exceptions.best_match(
            jsonschema.Draft202012Validator(schema).iter_errors(document)
        )
        if error is not None:
            where = "/".join(map(str, error.absolute_path)) or "(top level)"
            return None, f"breaks the schema at {where}: {error.message}"
    return document, ""


def json_schema(profile: Profile, name: str) -> dict[str, Any] | None:
    """The JSON Schema the file set `name` must satisfy, if the profile names one."""
    if name not in profile.files:
        return None  # `matched` says the set is not there
    raw = profile.files[name].json_schema
    if raw is None:
        return None
    path = paths.resolve_path(profile.expand(raw, f"files.{name}.json_schema"))
    return json.loads(path.read_text(encoding="utf-8"))


def problems(profile: Profile) -> list[Metric]:
    """Per file set, the files that do not parse as JSON or break the set's JSON Schema,
    each named with the reason; the valid ones are counted."""
    metrics = []
    for name, settings in profile.files.items():
        files = matched(profile, name)
        if not files:
            metrics.append(_nothing(profile, name))
            continue
        if not (settings.is_json or settings.json_schema):
            metrics.append(Metric(0, f"{len(files)} file(s), content not checked", label=name))
            continue
        schema = json_schema(profile, name)
        bad = [
            {"file": path.name, "problem": reason}
            for path in files
            if (reason := read_json(path, schema)[1])
        ]
        summary = (
            f"{len(bad)} of {len(files)} file(s) unusable; first: {bad[0]['file']}: {bad[0]['problem']}"
            if bad
            else f"all {len(files)} file(s) valid"
        )
        metrics.append(Metric(len(bad), summary, pd.DataFrame(bad) if bad else None, label=name))
    return metrics


def newest_age(profile: Profile) -> list[Metric]:
    """Per file set, the age of its newest file: a set that stopped getting new files
    means the job writing them stopped running."""
    metrics = []
    for name in profile.files:
        files = matched(profile, name)
        if not files:
            metrics.append(_nothing(profile, name))
            continue
        age_s = time.time() - files[-1].stat().st_mtime
        metrics.append(
            Metric(
                age_s,
                f"newest of {len(files)}: {files[-1].name}, written "
                f"{humanfriendly.format_timespan(age_s, max_units=2)} ago",
                label=name,
            )
        )
    return metrics


def growth(profile: Profile, days: float = 7) -> list[Metric]:
    """Per file set, the bytes in files changed within the last `days`: for logs rotated
    daily, what the pipeline wrote in that time; the table lists every file."""
    metrics = []
    cutoff = time.time() - days * 86400
    for name in profile.files:
        files = matched(profile, name)
        if not files:
            metrics.append(_nothing(profile, name))
            continue
        table = pd.DataFrame(
            [
                {
                    "file": path.name,
                    "bytes": path.stat().st_size,
                    "size": humanfriendly.format_size(path.stat().st_size),
                    "modified": pd.Timestamp(path.stat().st_mtime, unit="s").floor("s"),
                }
                for path in files
            ]
        )
        recent = int(table.loc[table["modified"] >= pd.Timestamp(cutoff, unit="s"), "bytes"].sum())
        total = int(table["bytes"].sum())
        metrics.append(
            Metric(
                recent,
                f"{humanfriendly.format_size(recent)} written in the last {days:g} days; "
                f"{len(files)} file(s), {humanfriendly.format_size(total)} in all",
                table.drop(columns=["bytes"]),
                label=name,
            )
        )
    return metrics


def latest_fields(profile: Profile, file_set: str) -> list[Metric]:
    """Each numeric field of the newest valid JSON file in `file_set` (a weekly cycle
    summary), one metric per field, judged by `checks: summary_field[FIELD]`; the table
    holds every valid file's fields, oldest first, for the trend."""
    schema = json_schema(profile, file_set)
    records = []
    for path in matched(profile, file_set):
        document, reason = read_json(path, schema)
        if not reason and isinstance(document, dict):
            records.append({"file": path.name, **document})
    if not records:
        return [_nothing(profile, file_set)]
    table = pd.DataFrame(records)
    latest = records[-1]
    numeric = [
        key
        for key, value in latest.items()
        if isinstance(value, int | float) and not isinstance(value, bool)
    ]
    metrics = [
        Metric(
            float(latest[key]),
            f"{key} in {latest['file']}: {latest[key]:g} (median before: "
            f"{pd.to_numeric(table[key], errors='coerce').iloc[:-1].median():g})",
            label=key,
        )
        for key in numeric
    ]
    metrics[0].table = table
    return metrics


def sha256(path: Path, opener: Callable[..., BinaryIO] = open) -> str:
    """The SHA-256 of a file's bytes (through `opener`: `gzip.open` checks what an archive
    decompresses to), read in chunks: a backup can be larger than memory."""
    digest = hashlib.sha256()
    with opener(path, "rb") as stream:
        while chunk := stream.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
