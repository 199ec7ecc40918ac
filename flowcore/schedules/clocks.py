"""Clocks: the event streams a :class:`~flowcore.schedules.Schedule` merges.

A clock's ``events(after=None)`` yields :class:`ClockEvent` s in time order, each strictly
after ``after`` (default: now) and no later than the clock's ``end_date``. An event carries
the clock's ``parameter_defaults`` (merged into the flow's parameters for that run) and
``labels``.

Time zones and daylight saving time (DST), shown for ``America/New_York``:

* ``IntervalClock``: an interval of a day or more is counted on the wall clock, so a
  daily clock starting at 09:00 fires at 09:00 local time on both sides of a DST change;
  a shorter interval is counted in elapsed time, so an hourly clock fires every elapsed
  hour, at 01:00 EDT and again at 01:00 EST on the night clocks go back.
* ``CronClock`` follows the wall clock: ``0 9 * * *`` is 09:00 local time every day; an
  hourly cron fires at each wall-clock hour the first time it is reached (01:00 once on
  the night clocks go back) and skips the hour that does not exist in spring.

>>> import pendulum
>>> from datetime import timedelta
>>> clock = IntervalClock(timedelta(days=1), start_date=pendulum.datetime(2018, 3, 10, 9, tz="America/New_York"))
>>> events = clock.events(after=clock.start_date)
>>> [next(events).start_time.isoformat() for _ in range(2)]
['2018-03-11T09:00:00-04:00', '2018-03-12T09:00:00-04:00']
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pendulum

__all__ = ["Clock", "ClockEvent", "CronClock", "DatesClock", "IntervalClock", "RRuleClock"]

_DEFAULT_INTERVAL_START = pendulum.datetime(2019, 1, 1, tz="UTC")
_ONE_DAY = timedelta(days=1)


def _instance(value: datetime | None) -> pendulum.DateTime | None:
    """A pendulum DateTime (naive values are taken as UTC)."""
    return None if value is None else pendulum.instance(value)


def _now_or(after: datetime | None) -> pendulum.DateTime:
    return pendulum.now("UTC") if after is None else pendulum.instance(after)


def _instant(dt: datetime) -> datetime:
    """``dt`` in UTC when it is aware: Python compares two datetimes of one time zone by
    their wall times, so 01:00 EDT and 01:00 EST (the hour repeated when DST ends) would be
    equal; as instants they are an hour apart."""
    return dt.astimezone(timezone.utc) if dt.utcoffset() is not None else dt


class ClockEvent:
    """One scheduled time, with the parameters and labels of the clock that emitted it.

    Ordered by ``start_time`` (as instants) and comparable with plain datetimes; equal to
    another event when time, parameter defaults and labels all match, and to a datetime
    when the times do.
    """

    __hash__ = None  # type: ignore[assignment]

    def __init__(
        self,
        start_time: datetime,
        parameter_defaults: dict[str, Any] | None = None,
        labels: list[str] | None = None,
    ) -> None:
        self.start_time = start_time
        self.parameter_defaults = parameter_defaults or {}
        self.labels = labels

    def _time(self, other: object, op: str) -> datetime:
        if isinstance(other, ClockEvent):
            return _instant(other.start_time)
        if isinstance(other, datetime):
            return _instant(other)
        raise TypeError(
            f"'{op}' not supported between instances of 'ClockEvent' and {type(other).__name__!r}"
        )

    def __eq__(self, other: object) -> bool:
        if isinstance(other, datetime):
            return _instant(self.start_time) == _instant(other)
        if not isinstance(other, ClockEvent):
            return False
        return (
            _instant(self.start_time) == _instant(other.start_time)
            and self.parameter_defaults == other.parameter_defaults
            and self.labels == other.labels
        )

    def __lt__(self, other: object) -> bool:
        return _instant(self.start_time) < self._time(other, "<")

    def __gt__(self, other: object) -> bool:
        return _instant(self.start_time) > self._time(other, ">")

    def __le__(self, other: object) -> bool:
        return _instant(self.start_time) <= self._time(other, "<=")

    def __ge__(self, other: object) -> bool:
        return _instant(self.start_time) >= self._time(other, ">=")

    def __repr__(self) -> str:
        return f"<{self.start_time},{self.labels},{self.parameter_defaults}>"


class Clock:
    """Base class: the shared arguments of every clock.

    Args:
        start_date: the first possible event (its time zone matters for DST handling).
        end_date: the last possible event (inclusive).
        parameter_defaults: parameter values for the runs this clock starts.
        labels: labels attached to each event (unused by local runs).
    """

    def __init__(
        self,
        start_date: datetime | None = None,
        end_date: datetime | None = None,
        parameter_defaults: dict[str, Any] | None = None,
        labels: list[str] | None = None,
    ) -> None:
        self.start_date = _instance(start_date)
        self.end_date = _instance(end_date)
        self.parameter_defaults = dict(parameter_defaults or {})
        self.labels = labels

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: start={self.start_date} end={self.end_date}>"

    def events(self, after: datetime | None = None) -> Iterator[ClockEvent]:
        """Events strictly after ``after`` (default now), in time order."""
        raise NotImplementedError("Must be implemented on Clock subclasses")

    def _event(self, start_time: datetime) -> ClockEvent:
        return ClockEvent(
            start_time, parameter_defaults=self.parameter_defaults, labels=self.labels
        )

    def _before_end(self, when: datetime) -> bool:
        return self.end_date is None or when <= self.end_date


class IntervalClock(Clock):
    """Fires every ``interval`` from ``start_date`` (default 2019-01-01 00:00 UTC).

    Intervals of a day or more are added on the wall clock of ``start_date``'s time zone,
    so a daily clock keeps its local time across DST changes; shorter intervals are added
    in elapsed time (UTC), so an hourly clock fires every elapsed hour.

    Args:
        interval: a positive ``timedelta``.
        start_date, end_date, parameter_defaults, labels: see :class:`Clock`.
    """

    def __init__(
        self,
        interval: timedelta,
        start_date: datetime | None = None,
        end_date: datetime | None = None,
        parameter_defaults: dict[str, Any] | None = None,
        labels: list[str] | None = None,
    ) -> None:
        if not isinstance(interval, timedelta):
            raise TypeError("Interval must be a timedelta.")
        if interval.total_seconds() <= 0:
            raise ValueError("Interval must be greater than 0.")
        self.interval = interval
        super().__init__(start_date, end_date, parameter_defaults, labels)

    def events(self, after: datetime | None = None) -> Iterator[ClockEvent]:
        after = _now_or(after)
        start = self.start_date or _DEFAULT_INTERVAL_START
        # An estimate in elapsed time, one step early: a wall-clock day differs from 24
        # elapsed hours by at most the DST shift, which is less than one interval here.
        elapsed = (after - start).total_seconds() / self.interval.total_seconds()
        n = max(int(elapsed) - 1, 0)
        nth = self._elapsed_nth(start) if self.interval < _ONE_DAY else self._wall_clock_nth(start)
        for index in itertools.count(n):
            when = nth(index)
            if when <= after:
                continue
            if not self._before_end(when):
                return
            yield self._event(when)

    def _elapsed_nth(self, start: pendulum.DateTime) -> Callable[[int], pendulum.DateTime]:
        """Event ``n`` = start + n intervals of elapsed time (stdlib arithmetic: fast)."""
        utc = start.in_tz("UTC")
        origin = datetime(*utc.timetuple()[:6], utc.microsecond, tzinfo=timezone.utc)
        tz, interval = start.tzinfo, self.interval

        def nth(n: int) -> pendulum.DateTime:
            local = (origin + interval * n).astimezone(tz)
            return pendulum.DateTime(
                local.year,
                local.month,
                local.day,
                local.hour,
                local.minute,
                local.second,
                local.microsecond,
                tzinfo=local.tzinfo,
                fold=local.fold,
            )

        return nth

    def _wall_clock_nth(self, start: pendulum.DateTime) -> Callable[[int], pendulum.DateTime]:
        """Event ``n`` = start + n intervals on the wall clock of ``start``'s time zone."""

        def nth(n: int) -> pendulum.DateTime:
            total = self.interval * n
            return start.add(days=total.days, seconds=total.seconds + total.microseconds / 1e6)

        return nth


class CronClock(Clock):
    """Fires at the times matched by a cron expression, on the wall clock of
    ``start_date``'s time zone (UTC without one).

    Args:
        cron: a cron string (validated with ``croniter``).
        start_date, end_date, parameter_defaults, labels: see :class:`Clock`.
        day_or: True (the default) joins day-of-month and day-of-week with OR, as cron
            does; False joins them with AND (for "the second Friday" style schedules).

    Raises:
        ValueError: the cron string is invalid.
    """

    def __init__(
        self,
        cron: str,
        start_date: datetime | None = None,
        end_date: datetime | None = None,
        parameter_defaults: dict[str, Any] | None = None,
        labels: list[str] | None = None,
        day_or: bool | None = None,
    ) -> None:
        croniter = _croniter()
        if not croniter.is_valid(cron):
            raise ValueError(f"Invalid cron string: {cron}")
        self.cron = cron
        self.day_or = True if day_or is None else day_or
        super().__init__(start_date, end_date, parameter_defaults, labels)

    def events(self, after: datetime | None = None) -> Iterator[ClockEvent]:
        tz = (self.start_date.tz if self.start_date is not None else None) or pendulum.UTC
        after = _now_or(after).in_tz(tz)
        if self.start_date is not None:
            after = max(after, self.start_date.subtract(seconds=1))
        # croniter counts from a whole second, and its times are strictly after it: the
        # second ``after`` falls in (an event at the next whole second is after ``after``)
        start = after.replace(microsecond=0)
        cron = _croniter()(self.cron, start, day_or=self.day_or)
        last_wall_time = start.naive()
        while True:
            when = pendulum.instance(cron.get_next(datetime)).in_tz(tz)
            if when <= after or when.naive() <= last_wall_time:
                continue  # a wall-clock time repeated when clocks go back: first one only
            if not self._before_end(when):
                return
            last_wall_time = when.naive()
            yield self._event(when)


class DatesClock(Clock):
    """Fires at each of ``dates`` (``start_date``/``end_date`` are their min and max).

    Args:
        dates: the datetimes (naive ones are taken as UTC).
        parameter_defaults, labels: see :class:`Clock`.
    """

    def __init__(
        self,
        dates: list[datetime],
        parameter_defaults: dict[str, Any] | None = None,
        labels: list[str] | None = None,
    ) -> None:
        if not dates:
            raise ValueError("DatesClock needs at least one date")
        self.dates = sorted(pendulum.instance(d) for d in dates)
        super().__init__(self.dates[0], self.dates[-1], parameter_defaults, labels)

    def events(self, after: datetime | None = None) -> Iterator[ClockEvent]:
        after = _now_or(after)
        for when in self.dates:
            if when > after:
                yield self._event(when)


class RRuleClock(Clock):
    """Fires at the occurrences of a ``dateutil.rrule`` rule or rule set.

    Args:
        rrule_obj: a ``dateutil.rrule.rrule`` or ``rruleset``.
        start_date, end_date, parameter_defaults, labels: see :class:`Clock`.
    """

    def __init__(
        self,
        rrule_obj: Any,
        start_date: datetime | None = None,
        end_date: datetime | None = None,
        parameter_defaults: dict[str, Any] | None = None,
        labels: list[str] | None = None,
    ) -> None:
        from dateutil import rrule

        if not isinstance(rrule_obj, rrule.rrulebase):
            raise TypeError(f"rrule_obj must be an rrule or rruleset, got: {rrule_obj!r}")
        self.rrule_obj = rrule_obj
        super().__init__(start_date, end_date, parameter_defaults, labels)

    def events(self, after: datetime | None = None) -> Iterator[ClockEvent]:
        inclusive = after is None
        after = _now_or(after)
        if self.start_date is not None and after < self.start_date:
            after, inclusive = self.start_date, True
        first = next(iter(self.rrule_obj), None)
        if first is None:
            return
        point: datetime = after
        if first.tzinfo is None:
            point = datetime(*after.in_tz("UTC").timetuple()[:6], after.microsecond)
        for when in self.rrule_obj.xafter(point, inc=inclusive):
            event_time = pendulum.instance(when)
            if not self._before_end(event_time):
                return
            yield self._event(event_time)


def _croniter() -> Any:
    try:
        from croniter import croniter
    except ImportError as exc:  # pragma: no cover - croniter is a dependency
        raise ImportError("CronClock needs croniter: pip install croniter") from exc
    return croniter
