"""Times as tables store them: PostgreSQL `timestamptz` and `timestamp`, ISO-8601 text
(`T` or space, `Z`, an offset or nothing, any fraction) and unix epochs in seconds or
milliseconds.

A probe never converts a column in SQL (that would keep an index from serving the query):
it turns its cut-off into the column's own representation (`Encoding.bound`) and reads
the values it fetches back as naive UTC (`Encoding.read`). The encoding is what the profile
declares, or, with `auto`, what a sample of the column shows; a sample that fits no known
encoding is an error naming the profile key, never a comparison that silently matches
nothing.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pandas as pd
import sqlalchemy as sa

from opslib.probes import ProbeError

CONVENTIONS = ("auto", "native", "iso", "epoch_s", "epoch_ms")
# Seconds since 1970 stay below this until the year 5138; milliseconds passed it in 1973.
_EPOCH_MS_FROM = 1e11
_ISO = re.compile(
    r"^(?P<date>\d{4}-\d{2}-\d{2})(?P<sep>[T ])(?P<time>\d{2}:\d{2}:\d{2})"
    r"(?P<fraction>[.,]\d+)?(?P<zone>Z|[+-]\d{2}:?\d{2})?$"
)
_SAMPLES_KEPT_S = 60.0
_samples: dict[tuple[str, str, str], tuple[float, Encoding | None]] = {}


@dataclass(frozen=True)
class Encoding:
    """How one column stores a moment. `kind` is native (a SQL timestamp type), iso
    (text), epoch_s or epoch_ms; an iso encoding knows its shape: the separator, the
    digits of fraction, and the zone written after it (`Z`, `+00:00`, or none)."""

    kind: str
    separator: str = " "
    fraction_digits: int = 0
    zone: str = ""
    aware: bool = False  # native: timestamptz (bind an aware time) rather than timestamp

    def bound(self, moment: datetime) -> Any:
        """A naive UTC `moment` as the column stores it, to compare in SQL."""
        if self.kind == "epoch_s":
            return int(moment.replace(tzinfo=UTC).timestamp())
        if self.kind == "epoch_ms":
            return int(moment.replace(tzinfo=UTC).timestamp() * 1000)
        if self.kind == "native":
            return moment.replace(tzinfo=UTC) if self.aware else moment
        local = moment.replace(tzinfo=UTC).astimezone(_offset(self.zone)).replace(tzinfo=None)
        text = local.strftime(f"%Y-%m-%d{self.separator}%H:%M:%S")
        if self.fraction_digits:
            text += "." + local.strftime("%f")[: self.fraction_digits].ljust(
                self.fraction_digits, "0"
            )
        return text + self.zone

    def read(self, values: pd.Series) -> pd.Series:
        """Fetched values as naive UTC datetimes (NaT where empty)."""
        if values.empty:
            return pd.to_datetime(values)
        if self.kind in ("epoch_s", "epoch_ms"):
            numbers = pd.to_numeric(values, errors="coerce")
            return pd.to_datetime(numbers, unit="s" if self.kind == "epoch_s" else "ms")
        parsed = pd.to_datetime(values, utc=True, format="ISO8601")
        return parsed.dt.tz_convert(None)

    def read_one(self, value: Any) -> datetime | None:
        """One fetched value as naive UTC (None for NULL)."""
        if value is None:
            return None
        return self.read(pd.Series([value])).iloc[0].to_pydatetime()


def _offset(zone: str) -> timezone:
    if zone in ("", "Z"):
        return UTC
    sign = -1 if zone[0] == "-" else 1
    digits = zone[1:].replace(":", "")
    return timezone(sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:])))


def of_sample(value: Any) -> Encoding | None:
    """The encoding a stored value shows, or None when it fits none."""
    if isinstance(value, datetime):
        return Encoding("native", aware=value.tzinfo is not None)
    if isinstance(value, int | float | Decimal) and not isinstance(value, bool):
        return Encoding("epoch_ms" if abs(value) >= _EPOCH_MS_FROM else "epoch_s")
    if isinstance(value, str):
        shape = _ISO.match(value.strip())
        if shape is None:
            return None
        fraction = shape["fraction"] or ""
        return Encoding("iso", shape["sep"], max(len(fraction) - 1, 0), shape["zone"] or "")
    return None


def _declared(convention: str, sample: Encoding | None, key: str) -> Encoding:
    """The encoding to use: the sample's, where it agrees with the declared convention. A
    SQL timestamp and ISO text compare alike as written (SQLite keeps every "timestamp" as
    text), so native and iso accept each other; an epoch in the other unit, or text where
    an epoch is declared, is the profile's mistake and is said so."""
    if sample is None:
        return Encoding("native" if convention == "auto" else convention)
    if convention in ("auto", sample.kind) or {convention, sample.kind} <= {"native", "iso"}:
        return sample
    raise ProbeError(
        f"{key} is declared {convention}, but the column holds {sample.kind} values "
        "(queue.timestamps)"
    )


def encoding(
    connection: sa.Connection, source: sa.FromClause, column: str, convention: str, key: str
) -> Encoding:
    """The encoding of `source.column` under the profile's `convention`, from one sampled
    value (kept for a minute per database, table and column: a run asks many times)."""
    cache_key = (str(connection.engine.url), str(source), column)
    kept = _samples.get(cache_key)
    if kept is not None and time.monotonic() - kept[0] < _SAMPLES_KEPT_S:
        return _declared(convention, kept[1], key)
    value = connection.execute(
        sa.select(source.c[column]).where(source.c[column].is_not(None)).limit(1)
    ).scalar()
    sample = None if value is None else of_sample(value)
    if value is not None and sample is None:
        raise ProbeError(
            f"{key}: cannot read {value!r} as a time (a timestamp, ISO 8601 text or a unix "
            "epoch): is it the right column?"
        )
    if len(_samples) > 1000:
        _samples.clear()
    _samples[cache_key] = (time.monotonic(), sample)
    return _declared(convention, sample, key)
