"""``Schedule``: when a flow runs, from clocks, filters and adjustments.

``Schedule.next(n)`` walks the clocks' event streams merged in time order (an event that
several clocks emit with the same parameters and labels counts once), keeps the events
that pass the filters, applies the adjustments, and stops after ``n`` events or 10,000
candidates, whichever comes first (so a filter that never passes cannot hang it).

>>> import pendulum
>>> from datetime import timedelta
>>> from flowcore.schedules import filters
>>> schedule = IntervalSchedule(start_date=pendulum.datetime(2019, 1, 4), interval=timedelta(days=1))
>>> schedule.filters.append(filters.is_weekday)
>>> [d.format("ddd D") for d in schedule.next(3, after=pendulum.datetime(2019, 1, 3))]
['Fri 4', 'Mon 7', 'Tue 8']
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timedelta
from typing import Any

from flowcore.schedules.clocks import Clock, ClockEvent, CronClock, IntervalClock, RRuleClock

__all__ = ["CronSchedule", "IntervalSchedule", "RRuleSchedule", "Schedule"]

_MAX_CANDIDATES = 10_000


class Schedule:
    """Event times for flow runs.

    Args:
        clocks: one or more clocks emitting candidate events.
        filters: every one must pass for an event to be kept.
        or_filters: if given, at least one must pass.
        not_filters: if given, none may pass.
        adjustments: ``fn(datetime) -> datetime`` applied in order to each kept event.
    """

    def __init__(
        self,
        clocks: list[Clock],
        filters: list[Callable[[datetime], bool]] | None = None,
        or_filters: list[Callable[[datetime], bool]] | None = None,
        not_filters: list[Callable[[datetime], bool]] | None = None,
        adjustments: list[Callable[[datetime], datetime]] | None = None,
    ) -> None:
        if not isinstance(clocks, Iterable):
            raise TypeError("clocks should be a list of clocks.")
        self.clocks = list(clocks)
        self.filters = list(filters or [])
        self.or_filters = list(or_filters or [])
        self.not_filters = list(not_filters or [])
        self.adjustments = list(adjustments or [])

    def __repr__(self) -> str:
        return f"<Schedule: {len(self.clocks)} clock(s)>"

    @property
    def start_date(self) -> datetime | None:
        """The earliest clock start date (None if no clock has one)."""
        return min((c.start_date for c in self.clocks if c.start_date), default=None)

    @property
    def end_date(self) -> datetime | None:
        """The latest clock end date (None if no clock has one)."""
        return max((c.end_date for c in self.clocks if c.end_date), default=None)

    def next(self, n: int, after: datetime | None = None, return_events: bool = False) -> list[Any]:
        """The next ``n`` event times strictly after ``after`` (default now).

        With ``return_events`` the :class:`ClockEvent` s, carrying each clock's
        ``parameter_defaults`` and ``labels``; fewer than ``n`` when the clocks run out or
        10,000 candidates were scanned.
        """
        found: list[Any] = []
        if n <= 0:
            return found
        candidates = itertools.islice(self._clock_events(after), _MAX_CANDIDATES)
        for event in candidates:
            if not self._passes(event.start_time):
                continue
            start_time = self._adjust(event.start_time)
            if return_events:
                found.append(ClockEvent(start_time, event.parameter_defaults, event.labels))
            else:
                found.append(start_time)
            if len(found) == n:
                break
        return found

    def _clock_events(self, after: datetime | None) -> Iterator[ClockEvent]:
        merged = heapq.merge(*(clock.events(after=after) for clock in self.clocks))
        for _, group in itertools.groupby(merged, key=lambda e: e.start_time.timestamp()):
            seen: list[ClockEvent] = []
            for event in group:
                if event not in seen:
                    seen.append(event)
                    yield event

    def _passes(self, dt: datetime) -> bool:
        return (
            all(f(dt) for f in self.filters)
            and (not self.or_filters or any(f(dt) for f in self.or_filters))
            and not any(f(dt) for f in self.not_filters)
        )

    def _adjust(self, dt: datetime) -> datetime:
        for adjust in self.adjustments:
            dt = adjust(dt)
        return dt


def IntervalSchedule(  # noqa: N802 - Prefect 1's name for a factory function
    start_date: datetime | None = None,
    interval: timedelta | None = None,
    end_date: datetime | None = None,
) -> Schedule:
    """A schedule of one :class:`~flowcore.schedules.clocks.IntervalClock`: every
    ``interval`` from ``start_date``. Intervals of a day or more keep local wall-clock
    time across DST changes; shorter ones follow UTC (see ``schedules.clocks``)."""
    if interval is None:
        raise TypeError("IntervalSchedule needs an interval, e.g. interval=timedelta(hours=1)")
    return Schedule(
        clocks=[IntervalClock(interval=interval, start_date=start_date, end_date=end_date)]
    )


def CronSchedule(  # noqa: N802 - Prefect 1's name for a factory function
    cron: str,
    start_date: datetime | None = None,
    end_date: datetime | None = None,
    day_or: bool | None = None,
) -> Schedule:
    """A schedule of one :class:`~flowcore.schedules.clocks.CronClock`, on the wall clock
    of ``start_date``'s time zone (UTC without one)."""
    return Schedule(
        clocks=[CronClock(cron=cron, start_date=start_date, end_date=end_date, day_or=day_or)]
    )


def RRuleSchedule(  # noqa: N802 - Prefect 1's name for a factory function
    rrule_obj: Any, start_date: datetime | None = None, end_date: datetime | None = None
) -> Schedule:
    """A schedule of one :class:`~flowcore.schedules.clocks.RRuleClock` (``dateutil.rrule``)."""
    return Schedule(clocks=[RRuleClock(rrule_obj, start_date=start_date, end_date=end_date)])
