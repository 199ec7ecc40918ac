"""Clocks, including DST behaviour in America/New_York (reference 13)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pendulum
import pytest
from dateutil import rrule

from flowcore.schedules.clocks import (
    Clock,
    ClockEvent,
    CronClock,
    DatesClock,
    IntervalClock,
    RRuleClock,
)

NY = "America/New_York"


def first(events: Iterator[ClockEvent], n: int) -> list[str]:
    """``n`` event times as local ISO strings (the offset shows EST -05:00 / EDT -04:00)."""
    return [e.start_time.isoformat() for e in itertools.islice(events, n)]


def ny(*args: int) -> pendulum.DateTime:
    return pendulum.datetime(*args, tz=NY)


# -- ClockEvent -----------------------------------------------------------------------------


def test_clock_event_compares_with_events_and_datetimes() -> None:
    when = pendulum.datetime(2030, 1, 1)
    event = ClockEvent(when, parameter_defaults={"a": 1}, labels=["x"])
    assert event == when
    assert event == ClockEvent(when, {"a": 1}, ["x"])
    assert event != ClockEvent(when)
    assert event < when.add(days=1) and event > when.subtract(days=1)
    assert event <= when and event >= when
    assert ClockEvent(when) < ClockEvent(when.add(seconds=1))
    assert event != "2030-01-01"
    with pytest.raises(TypeError, match="'<' not supported between instances of 'ClockEvent'"):
        assert event < 3
    assert repr(ClockEvent(when)) == "<2030-01-01 00:00:00+00:00,None,{}>"


def test_base_clock() -> None:
    clock = Clock(start_date=datetime(2030, 1, 1), parameter_defaults={"p": 1}, labels=["l"])
    assert clock.start_date == pendulum.datetime(2030, 1, 1)  # naive means UTC
    assert isinstance(clock.start_date, pendulum.DateTime)
    with pytest.raises(NotImplementedError):
        next(clock.events())


# -- IntervalClock --------------------------------------------------------------------------


@pytest.mark.parametrize("interval", [timedelta(0), timedelta(seconds=-1)])
def test_interval_must_be_positive(interval: timedelta) -> None:
    with pytest.raises(ValueError, match="Interval must be greater than 0."):
        IntervalClock(interval)


def test_interval_must_be_a_timedelta() -> None:
    with pytest.raises(TypeError, match="Interval must be a timedelta."):
        IntervalClock(60)  # type: ignore[arg-type]


def test_interval_default_start_is_2019_01_01_utc() -> None:
    clock = IntervalClock(timedelta(hours=7))
    event = next(clock.events(after=pendulum.datetime(2019, 1, 1, 10)))
    assert event.start_time == pendulum.datetime(2019, 1, 1, 14)
    now_event = next(clock.events())
    assert now_event.start_time > pendulum.now("UTC")
    assert (now_event.start_time - pendulum.datetime(2019, 1, 1)).total_seconds() % (7 * 3600) == 0


def test_interval_events_are_strictly_after_and_start_is_inclusive() -> None:
    start = pendulum.datetime(2030, 1, 1)
    clock = IntervalClock(timedelta(hours=1), start_date=start)
    assert first(clock.events(after=start.subtract(days=3)), 2) == [
        "2030-01-01T00:00:00+00:00",
        "2030-01-01T01:00:00+00:00",
    ]
    assert first(clock.events(after=start), 1) == ["2030-01-01T01:00:00+00:00"]
    assert first(clock.events(after=start.add(minutes=30)), 1) == ["2030-01-01T01:00:00+00:00"]
    assert next(clock.events()).start_time == start  # start in the future, after=now


def test_interval_end_date_is_inclusive() -> None:
    start = pendulum.datetime(2030, 1, 1)
    clock = IntervalClock(timedelta(hours=1), start_date=start, end_date=start.add(hours=3))
    assert len(list(clock.events(after=start.subtract(seconds=1)))) == 4
    assert list(clock.events(after=start.add(hours=3))) == []


def test_interval_events_carry_parameter_defaults_and_labels() -> None:
    clock = IntervalClock(timedelta(days=1), parameter_defaults={"x": 1}, labels=["prod"])
    event = next(clock.events())
    assert (event.parameter_defaults, event.labels) == ({"x": 1}, ["prod"])


def test_daily_interval_keeps_local_time_across_march_dst() -> None:
    clock = IntervalClock(timedelta(days=1), start_date=ny(2018, 3, 9, 9))
    assert first(clock.events(after=ny(2018, 3, 9, 9)), 3) == [
        "2018-03-10T09:00:00-05:00",
        "2018-03-11T09:00:00-04:00",
        "2018-03-12T09:00:00-04:00",
    ]


def test_daily_interval_keeps_local_time_across_november_dst() -> None:
    clock = IntervalClock(timedelta(days=1), start_date=ny(2018, 11, 2, 9))
    assert first(clock.events(after=ny(2018, 11, 2, 9)), 3) == [
        "2018-11-03T09:00:00-04:00",
        "2018-11-04T09:00:00-05:00",
        "2018-11-05T09:00:00-05:00",
    ]


def test_daily_interval_does_not_skip_the_next_event_after_dst() -> None:
    """Prefect 1 counts elapsed seconds to find the first event, so after the November
    change (a 25-hour day) it skips an event: after 08:30 on Nov 10 it gives Nov 11."""
    clock = IntervalClock(timedelta(days=1), start_date=ny(2018, 11, 1, 9))
    assert first(clock.events(after=ny(2018, 11, 10, 8, 30)), 1) == ["2018-11-10T09:00:00-05:00"]
    clock = IntervalClock(timedelta(days=1), start_date=ny(2018, 3, 1, 9))
    assert first(clock.events(after=ny(2018, 3, 15, 8, 30)), 1) == ["2018-03-15T09:00:00-04:00"]
    assert first(clock.events(after=ny(2018, 3, 15, 9, 30)), 1) == ["2018-03-16T09:00:00-04:00"]


def test_hourly_interval_follows_utc_in_november() -> None:
    clock = IntervalClock(timedelta(hours=1), start_date=ny(2018, 11, 4, 0))
    assert first(clock.events(after=ny(2018, 11, 3, 0)), 4) == [
        "2018-11-04T00:00:00-04:00",
        "2018-11-04T01:00:00-04:00",
        "2018-11-04T01:00:00-05:00",  # 01:00 twice: every elapsed hour
        "2018-11-04T02:00:00-05:00",
    ]


def test_hourly_interval_follows_utc_in_march() -> None:
    clock = IntervalClock(timedelta(hours=1), start_date=ny(2018, 3, 11, 0))
    assert first(clock.events(after=ny(2018, 3, 10, 0)), 3) == [
        "2018-03-11T00:00:00-05:00",
        "2018-03-11T01:00:00-05:00",
        "2018-03-11T03:00:00-04:00",  # 02:00 does not exist
    ]


def test_hourly_interval_follows_utc_long_after_its_start() -> None:
    """Prefect 1 switches to wall-clock arithmetic once a day has passed since the start
    date, so a clock started in October fires 01:00 only once on Nov 4."""
    clock = IntervalClock(timedelta(hours=1), start_date=ny(2018, 10, 1, 0))
    assert first(clock.events(after=ny(2018, 11, 4, 0, 30)), 3) == [
        "2018-11-04T01:00:00-04:00",
        "2018-11-04T01:00:00-05:00",
        "2018-11-04T02:00:00-05:00",
    ]


def test_intervals_of_more_than_a_day_count_on_the_wall_clock() -> None:
    clock = IntervalClock(timedelta(hours=36), start_date=ny(2018, 11, 2, 12))
    assert first(clock.events(after=ny(2018, 11, 2, 12)), 2) == [
        "2018-11-04T00:00:00-04:00",
        "2018-11-05T12:00:00-05:00",
    ]


# -- CronClock ------------------------------------------------------------------------------


def test_invalid_cron_string() -> None:
    with pytest.raises(ValueError, match="Invalid cron string: not a cron"):
        CronClock("not a cron")


def test_cron_without_start_date_is_utc() -> None:
    event = next(CronClock("0 9 * * *").events(after=pendulum.datetime(2030, 1, 1, 10)))
    assert event.start_time.isoformat() == "2030-01-02T09:00:00+00:00"
    assert event.start_time.timezone_name == "UTC"


def test_cron_start_date_is_inclusive_and_sets_the_time_zone() -> None:
    clock = CronClock("0 9 * * *", start_date=ny(2030, 1, 1, 9))
    assert first(clock.events(after=ny(2029, 1, 1)), 2) == [
        "2030-01-01T09:00:00-05:00",
        "2030-01-02T09:00:00-05:00",
    ]
    assert first(clock.events(after=pendulum.datetime(2030, 1, 5, 20)), 1) == [
        "2030-01-06T09:00:00-05:00"
    ]


def test_cron_events_are_strictly_after_including_fractions_of_a_second() -> None:
    clock = CronClock("* * * * *")
    assert first(clock.events(after=pendulum.datetime(2030, 1, 1, 0, 1)), 1) == [
        "2030-01-01T00:02:00+00:00"
    ]
    after = pendulum.datetime(2030, 1, 1, 0, 1, 0, 500)
    assert first(clock.events(after=after), 1) == ["2030-01-01T00:02:00+00:00"]
    # less than a second before an event: that event is next (it was skipped)
    just_before = pendulum.datetime(2030, 1, 1, 0, 0, 59, 500_000)
    assert first(clock.events(after=just_before), 2) == [
        "2030-01-01T00:01:00+00:00",
        "2030-01-01T00:02:00+00:00",
    ]
    every_second = CronClock("* * * * * *")  # croniter's seconds field
    assert first(every_second.events(after=just_before), 2) == [
        "2030-01-01T00:01:00+00:00",
        "2030-01-01T00:01:01+00:00",
    ]


def test_cron_end_date_and_defaults() -> None:
    clock = CronClock(
        "0 0 * * *",
        start_date=pendulum.datetime(2030, 1, 1),
        end_date=pendulum.datetime(2030, 1, 3),
        parameter_defaults={"p": 2},
        labels=["a"],
    )
    events = list(clock.events(after=pendulum.datetime(2029, 12, 1)))
    assert [e.start_time.day for e in events] == [1, 2, 3]
    assert all(e.parameter_defaults == {"p": 2} and e.labels == ["a"] for e in events)


def test_daily_cron_keeps_local_time_across_dst() -> None:
    clock = CronClock("0 9 * * *", start_date=ny(2018, 3, 9))
    assert first(clock.events(after=ny(2018, 3, 9)), 4) == [
        "2018-03-09T09:00:00-05:00",
        "2018-03-10T09:00:00-05:00",
        "2018-03-11T09:00:00-04:00",
        "2018-03-12T09:00:00-04:00",
    ]
    clock = CronClock("0 9 * * *", start_date=ny(2018, 11, 2))
    assert first(clock.events(after=ny(2018, 11, 2)), 4) == [
        "2018-11-02T09:00:00-04:00",
        "2018-11-03T09:00:00-04:00",
        "2018-11-04T09:00:00-05:00",
        "2018-11-05T09:00:00-05:00",
    ]


def test_hourly_cron_fires_each_wall_clock_hour_once_in_november() -> None:
    clock = CronClock("0 * * * *", start_date=ny(2018, 11, 4, 0))
    assert first(clock.events(after=ny(2018, 11, 4, 0)), 3) == [
        "2018-11-04T01:00:00-04:00",
        "2018-11-04T02:00:00-05:00",  # 01:00 EST is skipped: 01:00 was already reached
        "2018-11-04T03:00:00-05:00",
    ]
    clock = CronClock("*/30 * * * *", start_date=ny(2018, 11, 4, 0))
    assert first(clock.events(after=ny(2018, 11, 4, 0)), 4) == [
        "2018-11-04T00:30:00-04:00",
        "2018-11-04T01:00:00-04:00",
        "2018-11-04T01:30:00-04:00",
        "2018-11-04T02:00:00-05:00",
    ]


def test_a_daily_cron_in_the_repeated_hour_fires_once() -> None:
    clock = CronClock("30 1 * * *", start_date=ny(2018, 11, 2))
    assert first(clock.events(after=ny(2018, 11, 2)), 4) == [
        "2018-11-02T01:30:00-04:00",
        "2018-11-03T01:30:00-04:00",
        "2018-11-04T01:30:00-04:00",
        "2018-11-05T01:30:00-05:00",
    ]


def test_hourly_cron_skips_the_missing_hour_in_march() -> None:
    clock = CronClock("0 * * * *", start_date=ny(2018, 3, 11, 0))
    assert first(clock.events(after=ny(2018, 3, 11, 0)), 3) == [
        "2018-03-11T01:00:00-05:00",
        "2018-03-11T03:00:00-04:00",
        "2018-03-11T04:00:00-04:00",
    ]


def test_cron_day_or() -> None:
    """``0 0 8-14 * 5``: with day_or (cron's rule) days 8-14 OR Fridays; without it the
    second Friday of the month only."""
    after = pendulum.datetime(2030, 1, 1)
    either = CronClock("0 0 8-14 * 5", start_date=after)
    both = CronClock("0 0 8-14 * 5", start_date=after, day_or=False)
    assert [e.start_time.day for e in itertools.islice(either.events(after=after), 3)] == [4, 8, 9]
    assert [
        e.start_time.format("MM-DD") for e in itertools.islice(both.events(after=after), 2)
    ] == ["01-11", "02-08"]


# -- DatesClock -----------------------------------------------------------------------------


def test_dates_clock() -> None:
    dates = [pendulum.datetime(2030, 1, 3), pendulum.datetime(2030, 1, 1), datetime(2030, 1, 2)]
    clock = DatesClock(dates, parameter_defaults={"x": 1}, labels=["l"])
    assert clock.start_date == pendulum.datetime(2030, 1, 1)
    assert clock.end_date == pendulum.datetime(2030, 1, 3)
    assert [e.start_time.day for e in clock.events()] == [1, 2, 3]
    assert [e.start_time.day for e in clock.events(after=pendulum.datetime(2030, 1, 2))] == [3]
    assert all(e.parameter_defaults == {"x": 1} for e in clock.events())


def test_dates_in_the_past_give_no_events() -> None:
    clock = DatesClock([pendulum.now("UTC").subtract(days=1)])
    assert list(clock.events()) == []


def test_dates_clock_needs_dates() -> None:
    with pytest.raises(ValueError, match="at least one date"):
        DatesClock([])


# -- RRuleClock -----------------------------------------------------------------------------


def test_rrule_clock() -> None:
    rule = rrule.rrule(rrule.DAILY, dtstart=datetime(2030, 1, 1, 9), count=5)
    clock = RRuleClock(rule, end_date=pendulum.datetime(2030, 1, 3, 23))
    days = [e.start_time.day for e in clock.events(after=pendulum.datetime(2029, 1, 1))]
    assert days == [1, 2, 3]
    after_first = [e.start_time.day for e in clock.events(after=pendulum.datetime(2030, 1, 1, 9))]
    assert after_first == [2, 3]


def test_rrule_clock_start_date_is_inclusive() -> None:
    rule = rrule.rrule(rrule.DAILY, dtstart=datetime(2030, 1, 1, 9), count=5)
    clock = RRuleClock(rule, start_date=pendulum.datetime(2030, 1, 2, 9))
    assert [e.start_time.day for e in clock.events()] == [2, 3, 4, 5]


def test_rrule_clock_needs_a_rule() -> None:
    with pytest.raises(TypeError, match="rrule_obj must be an rrule or rruleset"):
        RRuleClock("FREQ=DAILY")


def test_custom_clock_subclass() -> None:
    class Twice(Clock):
        def events(self, after: Any = None) -> Iterator[ClockEvent]:
            yield self._event(pendulum.datetime(2030, 1, 1))
            yield self._event(pendulum.datetime(2030, 1, 2))

    assert [e.start_time.day for e in Twice(parameter_defaults={"a": 1}).events()] == [1, 2]
