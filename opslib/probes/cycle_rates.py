"""What a pipeline's cycle summaries say over counts: success rates, and values that held
for several cycles in a row.

A cycle summary (one JSON file per run, a file set of the profile) counts what the run
tried and what failed. Each pair of numeric fields `<step>_attempted` and `<step>_failed`
is a step with a success rate, `100 × (attempted − failed) / attempted` %, labelled
`<step>` (`import`, `validation`, `embedding`): 14 failed of 204 attempted imports is
93.1 %, which the manual's "import success above 98 %" judges, where the bare count of
failures cannot.

"Consistently above 45 minutes" or "error rate above 3 % for several cycles" is a value
that held in each of the last few cycles. `sustained` reports, for each field the profile
gives a `summary_sustained[FIELD]` threshold, the least alarming value of the last
`cycles` summaries (the highest, for a lower bound such as `85:`; else the lowest): it
crosses the threshold only when every one of those cycles did. A field may be a summary
field or a rate (`import_success_rate`).
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from opslib.probes import Metric, NotApplicable
from opslib.probes.files import json_schema, matched, read_json
from opslib.profiles import Profile
from opslib.status import Status

ATTEMPTED = "_attempted"
FAILED = "_failed"
RATE = "_success_rate"
SUSTAINED = "summary_sustained"


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def with_rates(document: dict[str, Any]) -> dict[str, Any]:
    """The summary's fields plus `<step>_success_rate` (%) for each attempted/failed pair
    (None when nothing was attempted)."""
    rates: dict[str, Any] = {}
    for key, attempted in document.items():
        if not key.endswith(ATTEMPTED) or not _number(attempted):
            continue
        step = key.removesuffix(ATTEMPTED)
        failed = document.get(step + FAILED)
        if not _number(failed):
            continue
        rates[step + RATE] = (
            round(100 * (attempted - failed) / attempted, 2) if attempted > 0 else None
        )
    return {**document, **rates}


def _records(profile: Profile, file_set: str) -> tuple[list[dict[str, Any]], int]:
    """The valid summaries of the set, oldest first, each with its rates; and how many
    files were left out (unreadable or breaking the schema)."""
    schema = json_schema(profile, file_set)
    records, unusable = [], 0
    for path in matched(profile, file_set):
        document, reason = read_json(path, schema)
        if reason or not isinstance(document, dict):
            unusable += 1
            continue
        records.append({"file": path.name, **with_rates(document)})
    return records, unusable


def _none_usable(profile: Profile, file_set: str, unusable: int) -> Metric:
    why = f"all {unusable} file(s) unusable" if unusable else "no file matches"
    return Metric(None, f"{why}: {profile.file_glob(file_set)}", verdict=Status.CRITICAL)


def success_rates(profile: Profile, file_set: str = "cycle_summaries") -> list[Metric]:
    """One metric per step of the newest usable summary: its success rate in %, judged by
    `checks: summary_rate[STEP]`. The table holds every cycle's rates, oldest first."""
    records, unusable = _records(profile, file_set)
    if not records:
        return [_none_usable(profile, file_set, unusable)]
    latest = records[-1]
    steps = [key.removesuffix(RATE) for key in latest if key.endswith(RATE)]
    if not steps:
        raise NotApplicable(
            f"{latest['file']} has no <step>{ATTEMPTED} and <step>{FAILED} counts to rate"
        )
    metrics = []
    for step in steps:
        rate = latest[step + RATE]
        attempted, failed = latest[step + ATTEMPTED], latest[step + FAILED]
        if rate is None:
            metrics.append(
                Metric(None, f"{step} in {latest['file']}: nothing attempted", label=step)
            )
            continue
        metrics.append(
            Metric(
                rate,
                f"{step} in {latest['file']}: {rate:g} % ({failed:g} failed of {attempted:g})",
                label=step,
            )
        )
    columns = ["file", *(step + RATE for step in steps)]
    metrics[0].table = pd.DataFrame(records).reindex(columns=columns)
    return metrics


def _lower_bound(profile: Profile, field: str) -> bool:
    """Whether the field's threshold is a lower bound (`85:`: alarming below it)."""
    settings = profile.check_settings(SUSTAINED, field)
    spec = str(settings.warning or settings.critical or "")
    return spec.endswith(":") and not spec.startswith("@")


def sustained(profile: Profile, file_set: str = "cycle_summaries", cycles: int = 3) -> list[Metric]:
    """For each `summary_sustained[FIELD]` the profile sets, the least alarming value of
    FIELD over the last `cycles` usable summaries: past its threshold only when it was in
    every one of them. Fewer summaries than that are said, and judged as they are."""
    prefix = f"{SUSTAINED}["
    fields = [key[len(prefix) : -1] for key in profile.checks if key.startswith(prefix)]
    if not fields:
        raise NotApplicable(f"no {SUSTAINED}[FIELD] thresholds under checks:")
    records, unusable = _records(profile, file_set)
    if not records:
        return [_none_usable(profile, file_set, unusable)]
    recent = records[-cycles:]
    few = f" (only {len(recent)} usable)" if len(recent) < cycles else ""
    metrics = []
    for field in fields:
        values = [record.get(field) for record in recent]
        if not all(_number(value) for value in values):
            missing = sum(not _number(value) for value in values)
            metrics.append(
                Metric(
                    None,
                    f"{field}: not a number in {missing} of the last {len(recent)} cycle(s)",
                    label=field,
                    verdict=Status.UNKNOWN,
                )
            )
            continue
        kept = max(values) if _lower_bound(profile, field) else min(values)
        shown = ", ".join(f"{value:g}" for value in values)
        metrics.append(
            Metric(
                float(kept),
                f"{field} over the last {len(recent)} cycle(s){few}: {shown}; "
                f"at least as bad as {kept:g} in each",
                label=field,
            )
        )
    metrics[0].table = pd.DataFrame(recent).reindex(columns=["file", *fields])
    return metrics
