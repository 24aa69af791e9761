"""NCRONTAB schedules, as Azure Functions timer triggers read them.

    schedule = parse_schedule("0 */5 * * * *")      # every five minutes, on the minute
    schedule.next_after(datetime(2024, 1, 1, 0, 2, tzinfo=UTC))   # 00:05:00

Three forms are accepted, the ones a ``timerTrigger`` accepts:

- six fields, ``{second} {minute} {hour} {day} {month} {day-of-week}`` (NCRONTAB);
- five fields, the classic crontab without seconds (second 0), which NCrontab also parses;
- a ``TimeSpan`` interval ``[d.]hh:mm[:ss]`` such as ``00:05:00``: fire every interval.

Each field is ``*``, a number, a range ``a-b``, a step ``*/n`` / ``a-b/n`` / ``a/n``, or a
comma-separated list of those. Months take ``Jan``..``Dec`` and days of the week ``Sun``..``Sat``
(case-insensitive); day of week is 0-6 with Sunday 0 (7 is also read as Sunday). As in NCrontab,
a day must match *both* the day-of-month and the day-of-week fields (classic cron ORs them when
both are restricted; NCrontab does not).

Times are evaluated in UTC, as Azure does by default. The next occurrence is strictly after the
given moment, like NCrontab's ``GetNextOccurrence``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from durable.errors import InvalidInputError

_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_TIMESPAN = re.compile(r"^(?:(\d+)\.)?(\d{1,2}):(\d{2})(?::(\d{2}))?$")
# How far ahead to look before declaring a schedule impossible (e.g. "0 0 0 30 2 *").
_SEARCH_YEARS = 8


class ScheduleError(InvalidInputError):
    """A timer schedule that cannot be parsed."""


@dataclass(frozen=True, slots=True)
class _Field:
    name: str
    low: int
    high: int
    names: tuple[str, ...] = ()
    names_start: int = 0


_SECOND = _Field("second", 0, 59)
_MINUTE = _Field("minute", 0, 59)
_HOUR = _Field("hour", 0, 23)
_DAY = _Field("day", 1, 31)
_MONTH = _Field("month", 1, 12, _MONTHS, 1)
_WEEKDAY = _Field("day of week", 0, 7, _DAYS, 0)


def _value(text: str, field: _Field, expression: str) -> int:
    lowered = text.lower()
    if field.names and lowered[:3] in field.names and lowered.isalpha():
        return field.names.index(lowered[:3]) + field.names_start
    if not text.isdigit():
        raise ScheduleError(f"Schedule '{expression}': '{text}' is not a valid {field.name}.")
    number = int(text)
    if not field.low <= number <= field.high:
        raise ScheduleError(
            f"Schedule '{expression}': {field.name} {number} is outside "
            f"{field.low}-{field.high}."
        )
    return number


def _parse_field(text: str, field: _Field, expression: str) -> frozenset[int]:
    values: set[int] = set()
    for part in text.split(","):
        if not part:
            raise ScheduleError(f"Schedule '{expression}': empty list item in '{text}'.")
        base, slash, step_text = part.partition("/")
        step = 1
        if slash:
            if not step_text.isdigit() or int(step_text) == 0:
                raise ScheduleError(f"Schedule '{expression}': bad step in '{part}'.")
            step = int(step_text)
        if base in ("*", "?"):
            low, high = field.low, field.high
        elif "-" in base:
            first, _, last = base.partition("-")
            low, high = _value(first, field, expression), _value(last, field, expression)
            if low > high:
                raise ScheduleError(f"Schedule '{expression}': range '{base}' is backwards.")
        else:
            low = _value(base, field, expression)
            high = field.high if slash else low
        values.update(range(low, high + 1, step))
    if field is _WEEKDAY and 7 in values:
        values.discard(7)
        values.add(0)
    return frozenset(values)


class Schedule:
    """A parsed schedule; :meth:`next_after` gives the next occurrence."""

    def __init__(self, expression: str) -> None:
        self.expression = expression

    def next_after(self, moment: datetime) -> datetime:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.expression!r})"


class CronSchedule(Schedule):
    """Six (or five) NCRONTAB fields."""

    def __init__(self, expression: str, fields: list[str]) -> None:
        super().__init__(expression)
        if len(fields) == 5:
            fields = ["0", *fields]
        self.seconds = _parse_field(fields[0], _SECOND, expression)
        self.minutes = _parse_field(fields[1], _MINUTE, expression)
        self.hours = _parse_field(fields[2], _HOUR, expression)
        self.days = _parse_field(fields[3], _DAY, expression)
        self.months = _parse_field(fields[4], _MONTH, expression)
        self.weekdays = _parse_field(fields[5], _WEEKDAY, expression)
        if not any(day <= _longest_month(month) for month in self.months for day in self.days):
            raise ScheduleError(f"Schedule '{expression}' names no day that exists.")

    def _day_matches(self, day: datetime) -> bool:
        # Python: Monday is 0; cron: Sunday is 0.
        return day.day in self.days and (day.weekday() + 1) % 7 in self.weekdays

    def next_after(self, moment: datetime) -> datetime:
        """The first matching second strictly after ``moment`` (UTC)."""
        now = _utc(moment).replace(microsecond=0) + timedelta(seconds=1)
        limit = now + timedelta(days=366 * _SEARCH_YEARS)
        candidate = now
        while candidate < limit:
            if candidate.month not in self.months:
                year, month = candidate.year, candidate.month + 1
                if month > 12:
                    year, month = year + 1, 1
                candidate = candidate.replace(year=year, month=month, day=1, hour=0, minute=0,
                                              second=0)
                continue
            if not self._day_matches(candidate):
                candidate = (candidate + timedelta(days=1)).replace(hour=0, minute=0, second=0)
                continue
            if candidate.hour not in self.hours:
                candidate = (candidate + timedelta(hours=1)).replace(minute=0, second=0)
                continue
            if candidate.minute not in self.minutes:
                candidate = (candidate + timedelta(minutes=1)).replace(second=0)
                continue
            if candidate.second not in self.seconds:
                candidate += timedelta(seconds=1)
                continue
            return candidate
        raise ScheduleError(
            f"Schedule '{self.expression}' has no occurrence in the next {_SEARCH_YEARS} years."
        )


class IntervalSchedule(Schedule):
    """A ``TimeSpan`` schedule: every ``interval`` after the previous occurrence."""

    def __init__(self, expression: str, interval: timedelta) -> None:
        super().__init__(expression)
        if interval <= timedelta(0):
            raise ScheduleError(f"Schedule '{expression}': the interval must be positive.")
        self.interval = interval

    def next_after(self, moment: datetime) -> datetime:
        return _utc(moment) + self.interval


def _longest_month(month: int) -> int:
    return 29 if month == 2 else 30 if month in (4, 6, 9, 11) else 31


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def parse_schedule(expression: str) -> Schedule:
    """Parse a timer trigger schedule, or raise :class:`ScheduleError` saying what is wrong."""
    if not isinstance(expression, str) or not expression.strip():
        raise ScheduleError("A timer schedule must be a non-empty string.")
    text = expression.strip()
    span = _TIMESPAN.match(text)
    if span is not None:
        days, hours, minutes, seconds = (int(g) if g else 0 for g in span.groups())
        if hours > 23 or minutes > 59 or seconds > 59:
            raise ScheduleError(f"Schedule '{expression}' is not a valid hh:mm:ss interval.")
        return IntervalSchedule(
            text, timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
        )
    fields = text.split()
    if len(fields) not in (5, 6):
        raise ScheduleError(
            f"Schedule '{expression}' must have six fields ({{second}} {{minute}} {{hour}} "
            "{day} {month} {day-of-week}), five (no seconds), or be an hh:mm:ss interval; "
            f"it has {len(fields)}."
        )
    return CronSchedule(text, fields)


__all__ = ["CronSchedule", "IntervalSchedule", "Schedule", "ScheduleError", "parse_schedule"]
