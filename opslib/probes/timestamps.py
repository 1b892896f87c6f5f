"""Times as tables store them: PostgreSQL `timestamptz` and `timestamp`, ISO-8601 text
(`T` or space, `Z`, an offset or nothing, any fraction with a point or a comma; or a
date alone), SQL dates, and unix epochs in seconds, milli-, micro- or nanoseconds.

A probe never converts a column in SQL (that would keep an index from serving the query):
it turns its cut-off into the column's own representation (`Encoding.bound`) and reads
the values it fetches back as naive UTC (`Encoding.read`). The encoding is what the profile
declares, or, with `auto`, what a sample of the column shows; a sample that fits no known
encoding is an error naming the profile key, never a comparison that silently matches
nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pandas as pd
import sqlalchemy as sa

from opslib.probes import ProbeError

# an epoch's unit -> (pandas' name for it, units per second)
EPOCHS = {"epoch_s": ("s", 1), "epoch_ms": ("ms", 10**3), "epoch_us": ("us", 10**6),
          "epoch_ns": ("ns", 10**9)}  # fmt: skip
# An epoch in seconds stays below 1e11 until the year 5138; in milliseconds it passed that
# in 1973 and stays below 1e14 until 5138, and so on by a factor of a thousand per unit.
_EPOCH_UNIT_FROM = ((1e17, "epoch_ns"), (1e14, "epoch_us"), (1e11, "epoch_ms"))
_ISO = re.compile(
    r"^(?P<date>\d{4}-\d{2}-\d{2})(?:(?P<sep>[T ])(?P<time>\d{2}:\d{2}:\d{2})"
    r"(?P<fraction>[.,]\d+)?(?P<zone>Z|[+-]\d{2}(?::?\d{2})?)?)?$"
)


@dataclass(frozen=True)
class Encoding:
    """How one column stores a moment. `kind` is native (a SQL timestamp or date type),
    iso (text) or one of the EPOCHS; an iso encoding knows its shape: the separator (none
    for a date alone), the digits of fraction and their mark, and the zone written after
    it (`Z`, `+00:00`, `+00` or none)."""

    kind: str
    separator: str = " "
    fraction_digits: int = 0
    zone: str = ""
    aware: bool = False  # native: timestamptz (bind an aware time) rather than timestamp
    decimal_mark: str = "."

    def bound(self, moment: datetime) -> Any:
        """A naive UTC `moment` as the column stores it, to compare in SQL."""
        if self.kind in EPOCHS:
            since_1970 = moment.replace(tzinfo=UTC) - datetime(1970, 1, 1, tzinfo=UTC)
            return since_1970 // timedelta(microseconds=1) * EPOCHS[self.kind][1] // 10**6
        if self.kind == "native":
            return moment.replace(tzinfo=UTC) if self.aware else moment
        local = moment.replace(tzinfo=UTC).astimezone(_offset(self.zone)).replace(tzinfo=None)
        if not self.separator:  # a date alone: the whole day of `moment` compares equal
            return local.strftime("%Y-%m-%d")
        text = local.strftime(f"%Y-%m-%d{self.separator}%H:%M:%S")
        if self.fraction_digits:
            text += self.decimal_mark + local.strftime("%f")[: self.fraction_digits].ljust(
                self.fraction_digits, "0"
            )
        return text + self.zone

    def read(self, values: pd.Series) -> pd.Series:
        """Fetched values as naive UTC datetimes (NaT where empty)."""
        if values.empty:
            return pd.to_datetime(values)
        if self.kind in EPOCHS:
            numbers = pd.to_numeric(values, errors="coerce")
            return pd.to_datetime(numbers, unit=EPOCHS[self.kind][0])
        if self.decimal_mark != ".":
            values = values.str.replace(self.decimal_mark, ".", regex=False)
        parsed = pd.to_datetime(values, utc=True, format="ISO8601")
        return parsed.dt.tz_convert(None)

    def read_one(self, value: Any) -> datetime | None:
        """One fetched value as naive UTC (None for NULL)."""
        if value is None:
            return None
        return self.read(pd.Series([value])).iloc[0].to_pydatetime()


# PostgreSQL type oids that say the encoding of a column holding no value yet
_PG_TYPES = {
    1184: Encoding("native", aware=True),
    1114: Encoding("native"),
    1082: Encoding("native"),
}


def _offset(zone: str) -> timezone:
    if zone in ("", "Z"):
        return UTC
    sign = -1 if zone[0] == "-" else 1
    digits = zone[1:].replace(":", "")
    return timezone(sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:] or 0)))


def of_sample(value: Any) -> Encoding | None:
    """The encoding a stored value shows, or None when it fits none."""
    if isinstance(value, datetime):
        return Encoding("native", aware=value.tzinfo is not None)
    if isinstance(value, date):
        return Encoding("native")
    if isinstance(value, int | float | Decimal) and not isinstance(value, bool):
        unit = next((kind for start, kind in _EPOCH_UNIT_FROM if abs(value) >= start), None)
        return Encoding(unit or "epoch_s")
    if isinstance(value, str):
        shape = _ISO.match(value.strip())
        if shape is None:
            return None
        fraction = shape["fraction"] or "."
        return Encoding(
            "iso",
            shape["sep"] or "",
            len(fraction) - 1,
            shape["zone"] or "",
            decimal_mark=fraction[0],
        )
    return None


def declared(convention: str, sample: Encoding | None, key: str) -> Encoding:
    """The encoding to use: the sample's, where it agrees with the declared convention. A
    SQL timestamp and ISO text compare alike as written (SQLite keeps every "timestamp" as
    text), so native and iso accept each other; an epoch in the other unit, or text where
    an epoch is declared, is the profile's mistake and is said so. No sample (an empty
    column) is read as declared, `auto` as a SQL timestamp."""
    if sample is None:
        return Encoding("native" if convention == "auto" else convention)
    if convention in ("auto", sample.kind) or {convention, sample.kind} <= {"native", "iso"}:
        return sample
    raise ProbeError(
        f"{key} is declared {convention}, but the column holds {sample.kind} values "
        "(queue.timestamps)"
    )


def sampled(
    connection: sa.Connection, source: sa.FromClause, column: str, key: str
) -> Encoding | None:
    """The encoding one stored value of `source.column` shows. A column with no value yet
    is None, unless PostgreSQL's type of it says."""
    result = connection.execute(
        sa.select(source.c[column]).where(source.c[column].is_not(None)).limit(1)
    )
    type_code = result.cursor.description[0][1] if result.cursor is not None else None
    value = result.scalar()
    if value is None:
        postgres = connection.dialect.name == "postgresql"
        return _PG_TYPES.get(type_code) if postgres else None  # type: ignore[arg-type]
    sample = of_sample(value)
    if sample is None:
        raise ProbeError(
            f"{key}: cannot read {value!r} as a time (a timestamp, ISO 8601 text or a "
            "unix epoch): is it the right column?"
        )
    return sample


def encoding(
    connection: sa.Connection, source: sa.FromClause, column: str, convention: str, key: str
) -> Encoding:
    """The encoding of `source.column` under the profile's `convention`."""
    return declared(convention, sampled(connection, source, column, key), key)
