"""NCRONTAB schedules: the forms a timerTrigger accepts, NCrontab's semantics, clear errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from durable.schedules.ncrontab import IntervalSchedule, ScheduleError, parse_schedule
from durable.schedules.timers import period_of


def at(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def occurrences(expression: str, start: datetime, count: int) -> list[datetime]:
    schedule = parse_schedule(expression)
    found: list[datetime] = []
    moment = start
    for _ in range(count):
        moment = schedule.next_after(moment)
        found.append(moment)
    return found


@pytest.mark.parametrize(
    ("expression", "start", "expected"),
    [
        # Azure's documented examples.
        ("0 */5 * * * *", at(2024, 1, 1, 0, 2), [at(2024, 1, 1, 0, 5), at(2024, 1, 1, 0, 10)]),
        ("0 0 * * * *", at(2024, 1, 1, 0, 0), [at(2024, 1, 1, 1), at(2024, 1, 1, 2)]),
        ("0 0 */2 * * *", at(2024, 1, 1, 1, 30), [at(2024, 1, 1, 2), at(2024, 1, 1, 4)]),
        ("0 0 9-17 * * *", at(2024, 1, 1, 17, 0, 1), [at(2024, 1, 2, 9), at(2024, 1, 2, 10)]),
        ("0 30 9 * * *", at(2024, 1, 1, 10), [at(2024, 1, 2, 9, 30), at(2024, 1, 3, 9, 30)]),
        # Weekdays only (2024-01-05 is a Friday).
        ("0 30 9 * * 1-5", at(2024, 1, 5, 10), [at(2024, 1, 8, 9, 30), at(2024, 1, 9, 9, 30)]),
        ("0 30 9 * Jan Mon", at(2024, 1, 1, 10), [at(2024, 1, 8, 9, 30), at(2024, 1, 15, 9, 30)]),
        ("*/15 * * * * *", at(2024, 1, 1, 0, 0, 7),
         [at(2024, 1, 1, 0, 0, 15), at(2024, 1, 1, 0, 0, 30)]),
        ("5,10 * * * * *", at(2024, 1, 1, 0, 0, 7),
         [at(2024, 1, 1, 0, 0, 10), at(2024, 1, 1, 0, 1, 5)]),
        # Five fields: minute precision (second 0), as NCrontab parses them.
        ("*/30 * * * *", at(2024, 1, 1, 0, 0, 1), [at(2024, 1, 1, 0, 30), at(2024, 1, 1, 1)]),
        # A leap day.
        ("0 0 0 29 2 *", at(2024, 3, 1), [at(2028, 2, 29), at(2032, 2, 29)]),
        # 7 is Sunday too (2024-01-07 is a Sunday).
        ("0 0 0 * * 7", at(2024, 1, 1), [at(2024, 1, 7), at(2024, 1, 14)]),
    ],
)
def test_next_occurrences(expression: str, start: datetime, expected: list[datetime]) -> None:
    assert occurrences(expression, start, len(expected)) == expected


def test_next_is_strictly_after_and_ignores_microseconds() -> None:
    schedule = parse_schedule("0 */5 * * * *")
    assert schedule.next_after(at(2024, 1, 1, 0, 5)) == at(2024, 1, 1, 0, 10)
    late = at(2024, 1, 1, 0, 4, 59) + timedelta(microseconds=999_999)
    assert schedule.next_after(late) == at(2024, 1, 1, 0, 5)


def test_day_of_month_and_day_of_week_must_both_match() -> None:
    # NCrontab ANDs the two day fields: the 13th only when it is a Friday.
    found = occurrences("0 0 0 13 * Fri", at(2024, 1, 1), 2)
    assert found == [at(2024, 9, 13), at(2024, 12, 13)]
    assert all(day.weekday() == 4 for day in found)


def test_timespan_interval() -> None:
    schedule = parse_schedule("00:05:00")
    assert isinstance(schedule, IntervalSchedule)
    assert schedule.next_after(at(2024, 1, 1, 0, 1, 3)) == at(2024, 1, 1, 0, 6, 3)
    assert parse_schedule("1.02:00:00").interval == timedelta(days=1, hours=2)  # type: ignore


def test_naive_times_are_utc() -> None:
    schedule = parse_schedule("0 0 * * * *")
    assert schedule.next_after(datetime(2024, 1, 1, 0, 30)) == at(2024, 1, 1, 1)


@pytest.mark.parametrize(
    ("expression", "says"),
    [
        ("", "non-empty"),
        ("* * * *", "six fields"),
        ("0 61 * * * *", "minute 61 is outside 0-59"),
        ("0 0 25 * * *", "hour 25"),
        ("0 0 0 0 * *", "day 0"),
        ("0 0 0 * 13 *", "month 13"),
        ("0 0 0 * * 8", "day of week 8"),
        ("0 0 0 * Foo *", "'Foo' is not a valid month"),
        ("0 */0 * * * *", "bad step"),
        ("0 5-1 * * * *", "backwards"),
        ("0 0 0 31 2 *", "names no day"),
        ("0 0 0 1,,2 * *", "empty list item"),
        ("25:00:00", "not a valid hh:mm:ss"),
        ("00:00:00", "must be positive"),
    ],
)
def test_bad_schedules_say_what_is_wrong(expression: str, says: str) -> None:
    with pytest.raises(ScheduleError, match=says):
        parse_schedule(expression)


def test_bad_schedule_is_a_value_error_for_callers() -> None:
    with pytest.raises(ValueError):
        parse_schedule("every five minutes")


@pytest.mark.parametrize(
    ("expression", "period"),
    [
        ("*/10 * * * * *", timedelta(seconds=10)),
        ("0 */5 * * * *", timedelta(minutes=5)),
        ("0 0 9 * * *", timedelta(days=1)),
        ("00:00:30", timedelta(seconds=30)),
    ],
)
def test_period(expression: str, period: timedelta) -> None:
    assert period_of(parse_schedule(expression)) == period
