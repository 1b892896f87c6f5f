"""Cron expressions as both engines that run the schedule read them: Kubernetes CronJobs
(robfig/cron's standard parser) and Debian's cron (Vixie cron). The crontab, the CronJobs
and the Airflow DAGs carry the same five fields, so an expression is accepted only in the
grammar the two share, and `opslib schedule show` computes runs with the same reading.

What each accepts, and where they part (so opslib refuses it):

- fields: minute 0-59, hour 0-23, day-of-month 1-31, month 1-12 or JAN-DEC, day-of-week
  0-6 or SUN-SAT. Debian also takes 7 for Sunday; Kubernetes refuses it.
- items: `*`, `N`, `N-M`, `*/S`, `N-M/S`, joined by commas; names are three letters, any
  case. Kubernetes reads `N/S` as `N-max/S`; Debian refuses it. Kubernetes takes `?`;
  Debian refuses it. Nicknames (`@daily`) and `L`, `W`, `#` are not five fields.
- days: when both day fields are restricted a day matching either runs, otherwise both
  must match. Debian counts a field as unrestricted when its text starts with `*`
  (`*/2` too); Kubernetes when an item is `*` or `*/1` (`1,*` too). Where that changes
  the rule the expression is refused, with the range to write instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta


@dataclass(frozen=True)
class Field:
    """One of the five fields: its name in messages, its bounds and its names, if any."""

    name: str
    low: int
    high: int
    names: tuple[str, ...] = ()  # the names of low, low+1, ...

    @property
    def size(self) -> int:
        return self.high - self.low + 1

    @property
    def named(self) -> str:
        return f" or a name {self.names[0]}-{self.names[-1]}" if self.names else ""


# English whatever the locale, as both engines spell them
MONTH_NAMES = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)  # fmt: skip
MONTHS = tuple(name[:3].upper() for name in MONTH_NAMES)
WEEKDAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
FIELDS = (
    Field("minute", 0, 59),
    Field("hour", 0, 23),
    Field("day-of-month", 1, 31),
    Field("month", 1, 12, MONTHS),
    Field("day-of-week", 0, 6, WEEKDAYS),
)
DAY_OF_MONTH, DAY_OF_WEEK = 2, 4
# longest days per month, 29 February included: a date that exists in some year
LONGEST_MONTH = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
ITEM = re.compile(r"(?P<start>\*|\w+)(?:-(?P<end>\w+))?(?:/(?P<step>\d+))?", re.ASCII)


@dataclass(frozen=True)
class CronTimes:
    """The values each field selects, and how the two day fields combine."""

    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 is Sunday
    either_day: bool  # both day fields restricted: a day matching either one runs

    def runs_on(self, day: date) -> bool:
        """Whether the schedule starts anything on `day`."""
        if day.month not in self.months:
            return False
        in_days = day.day in self.days
        in_weekdays = day.isoweekday() % 7 in self.weekdays
        return (in_days or in_weekdays) if self.either_day else (in_days and in_weekdays)

    def next_runs(self, after: datetime, count: int) -> list[datetime]:
        """The next `count` start times strictly after `after` (naive, in the expression's
        time zone); fewer only if the calendar ends first."""
        runs: list[datetime] = []
        day = after.date()
        while len(runs) < count:
            if self.runs_on(day):
                starts = (
                    datetime(day.year, day.month, day.day, hour, minute)
                    for hour in self.hours
                    for minute in self.minutes
                )
                runs += [start for start in starts if start > after][: count - len(runs)]
            if day == date.max:
                break
            day += timedelta(days=1)
        return runs


def parse_cron(text: str) -> CronTimes:
    """Read a five-field expression; a `ValueError` names the field and what is wrong,
    and refuses an expression that never runs (31 February) or that cron and
    Kubernetes would run on different days."""
    parts = text.split()
    if len(parts) != len(FIELDS):
        raise ValueError(
            f"{text!r} is not a five-field cron expression "
            "(minute hour day-of-month month day-of-week)"
        )
    try:
        values = [_field_values(part, field) for part, field in zip(parts, FIELDS, strict=True)]
    except ValueError as exc:
        raise ValueError(f"{text!r}: {exc}") from None
    times = CronTimes(
        minutes=tuple(sorted(values[0])),
        hours=tuple(sorted(values[1])),
        days=frozenset(values[DAY_OF_MONTH]),
        months=frozenset(values[3]),
        weekdays=frozenset(values[DAY_OF_WEEK]),
        either_day=_either_day(text, parts[DAY_OF_MONTH], parts[DAY_OF_WEEK]),
    )
    if not times.either_day and not any(
        day <= LONGEST_MONTH[month - 1] for month in times.months for day in times.days
    ):
        raise ValueError(f"{text!r} never runs: {_missing_days(times)}")
    return times


def _field_values(text: str, field: Field) -> set[int]:
    values: set[int] = set()
    for item in text.split(","):
        if not item:
            raise ValueError(f"{field.name} {text!r} has an empty list item")
        values |= _item_values(item, field)
    return values


def _item_values(item: str, field: Field) -> set[int]:
    match = ITEM.fullmatch(item)
    if not match:
        raise ValueError(
            f"{field.name} {item!r} is not a value, a range or a step (such as 5, 1-5, "
            "*/15 or 0-30/10)"
        )
    start_text, end_text, step_text = match.group("start", "end", "step")
    if start_text == "*":
        if end_text:
            raise ValueError(f"{field.name} {item!r}: * is the whole range already")
        start, end = field.low, field.high
    else:
        start = _value(start_text, field)
        end = _value(end_text, field) if end_text else start
        if step_text and not end_text:
            last = field.names[-1] if start_text.upper() in field.names else field.high
            raise ValueError(
                f"{field.name} {item!r}: a step needs * or a range before it "
                f"({start_text}-{last}/{step_text})"
            )
    if start > end:
        raise ValueError(f"{field.name} {item!r} runs backwards")
    step = int(step_text or 1)
    if not 1 <= step <= field.size:
        raise ValueError(f"{field.name} {item!r}: the step must be 1 to {field.size}")
    return set(range(start, end + 1, step))


def _value(text: str, field: Field) -> int:
    if text.upper() in field.names:
        return field.low + field.names.index(text.upper())
    if not text.isdigit():
        raise ValueError(f"{field.name} {text!r} is not a number{field.named}")
    value = int(text)
    if value > field.high:
        sunday = value == 7 and field is FIELDS[DAY_OF_WEEK]
        hint = " (Sunday is 0 or SUN; Kubernetes refuses 7)" if sunday else ""
        raise ValueError(f"{field.name} {value} is above {field.high}{hint}")
    if value < field.low:
        raise ValueError(f"{field.name} {value} is below {field.low}")
    return value


def _either_day(text: str, days: str, weekdays: str) -> bool:
    """Cron's rule: with both day fields restricted a day matching either runs. Debian and
    Kubernetes disagree on what is unrestricted (see the module docstring); an expression
    whose rule depends on that is refused."""
    readings = {
        part: (
            part.startswith("*"),
            any(re.fullmatch(r"\*(/0*1)?", item) for item in part.split(",")),
        )
        for part in (days, weekdays)
    }
    debian, kubernetes = (not (readings[days][n] or readings[weekdays][n]) for n in (0, 1))
    if debian == kubernetes:
        return debian
    field, part = next(
        (field, part)
        for field, part in ((FIELDS[DAY_OF_MONTH], days), (FIELDS[DAY_OF_WEEK], weekdays))
        if readings[part][0] != readings[part][1]
    )
    # `*/2` is unrestricted to Debian only, `1,*` to Kubernetes only (and is every day)
    instead = part.replace("*", f"{field.low}-{field.high}", 1) if part.startswith("*") else "*"
    raise ValueError(
        f"{text!r}: cron and Kubernetes combine day-of-month {days!r} and day-of-week "
        f"{weekdays!r} differently; write {field.name} {part!r} as {instead!r}"
    )


def _missing_days(times: CronTimes) -> str:
    """`February has no day 30 or 31`: why a day-of-month never falls in the months."""
    months = [MONTH_NAMES[month - 1] for month in sorted(times.months)]
    days = [str(day) for day in sorted(times.days)]
    return f"{_listed(months, 'and')} {'has' if len(months) == 1 else 'have'} no day " + (
        _listed(days, "or")
    )


def _listed(words: list[str], joiner: str) -> str:
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} {joiner} {words[-1]}"
