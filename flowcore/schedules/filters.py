"""Schedule filters: ``fn(datetime) -> bool`` tests on candidate events.

A :class:`~flowcore.schedules.Schedule` keeps an event when all its ``filters`` pass, at
least one of its ``or_filters`` passes (if it has any) and none of its ``not_filters``
passes. Times are read in the event's own time zone.

>>> import pendulum
>>> monday = pendulum.datetime(2019, 1, 7, 9, 30)
>>> is_weekday(monday), is_weekend(monday), is_day_of_week(0)(monday)
(True, False, True)
>>> from datetime import time
>>> between_times(time(9), time(17))(monday), at_time(time(9, 30))(monday)
(True, True)
>>> between_dates(12, 1, 1, 31)(monday), is_month_start(monday)
(True, False)
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, time, timedelta

__all__ = [
    "at_time",
    "between_dates",
    "between_datetimes",
    "between_times",
    "is_day_of_week",
    "is_month_end",
    "is_month_start",
    "is_weekday",
    "is_weekend",
    "on_date",
    "on_datetime",
]

Filter = Callable[[datetime], bool]


def on_datetime(dt: datetime) -> Filter:
    """Passes exactly at ``dt``."""

    def filter_fn(dt_2: datetime) -> bool:
        return dt_2 == dt

    return filter_fn


def between_datetimes(start: datetime, end: datetime) -> Filter:
    """Passes from ``start`` to ``end``, both included."""

    def filter_fn(dt: datetime) -> bool:
        return start <= dt <= end

    return filter_fn


def on_date(month: int, day: int) -> Filter:
    """Passes on that month and day of any year."""

    def filter_fn(dt: datetime) -> bool:
        return (dt.month, dt.day) == (month, day)

    return filter_fn


def between_dates(start_month: int, start_day: int, end_month: int, end_day: int) -> Filter:
    """Passes between two (month, day) dates of any year, both included; the range may wrap
    around the new year (``between_dates(12, 1, 1, 31)``)."""
    start, end = (start_month, start_day), (end_month, end_day)

    def filter_fn(dt: datetime) -> bool:
        date = (dt.month, dt.day)
        if start <= end:
            return start <= date <= end
        return date >= start or date <= end

    return filter_fn


def at_time(t: time) -> Filter:
    """Passes when the time of day is exactly ``t``."""

    def filter_fn(dt: datetime) -> bool:
        return dt.time() == t

    return filter_fn


def between_times(start: time, end: time) -> Filter:
    """Passes between two times of day, both included; the range may wrap past midnight."""

    def filter_fn(dt: datetime) -> bool:
        now = dt.time()
        if start <= end:
            return start <= now <= end
        return now >= start or now <= end

    return filter_fn


def is_weekday(dt: datetime) -> bool:
    """Monday to Friday."""
    return dt.weekday() < 5


def is_weekend(dt: datetime) -> bool:
    """Saturday or Sunday."""
    return dt.weekday() > 4


def is_month_start(dt: datetime) -> bool:
    """The first day of a month."""
    return dt.day == 1


def is_month_end(dt: datetime) -> bool:
    """The last day of a month."""
    return (dt + timedelta(days=1)).month != dt.month


def is_day_of_week(day_of_week: int) -> Filter:
    """Passes on one day of the week: 0 is Monday, 6 is Sunday."""

    def filter_fn(dt: datetime) -> bool:
        return dt.weekday() == day_of_week

    return filter_fn
