"""The building blocks of the profile schema: strict models and the value types a
profile key may hold, read with the parsers of `opslib.units` (which stays free of
pydantic, so the CLI starts without it)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict

from opslib.checks import Threshold
from opslib.clock import strptime_regex
from opslib.status import Status
from opslib.units import DAY_S, parse_duration, parse_size, regex


class StrictModel(BaseModel):
    """Unknown keys are errors: a misspelt key must never be silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def _threshold(value: Any) -> str | None:
    if value is None:
        return None
    Threshold.parse(value)
    return str(value)


ThresholdSpec = Annotated[str | None, BeforeValidator(_threshold)]


def _days(value: Any) -> float:
    return parse_duration(value, allow_zero=True) / DAY_S


Seconds = Annotated[float, BeforeValidator(parse_duration)]
Days = Annotated[float, BeforeValidator(_days)]
Bytes = Annotated[float, BeforeValidator(parse_size)]
Regex = Annotated[str, BeforeValidator(regex)]


def _timestamp_format(value: str) -> str:
    strptime_regex(value)  # a directive the log scanner cannot read is refused here
    return value


TimestampFormat = Annotated[str, BeforeValidator(_timestamp_format)]


def _severity_condition(value: str) -> str:
    check, equals, status = value.partition("=")
    if not equals or not check.strip() or status.strip() not in Status.__members__:
        raise ValueError(
            f"{value!r} is not CHECK=STATUS (a check name or glob, then one of "
            f"{', '.join(Status.__members__)})"
        )
    return value


SeverityCondition = Annotated[str, BeforeValidator(_severity_condition)]
