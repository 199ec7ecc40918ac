"""``Schedule``, the factory functions, filters and adjustments (reference 13)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, time, timedelta
from typing import Any

import pendulum
import pytest
from dateutil import rrule

import flowcore
from flowcore.schedules import (
    CronSchedule,
    IntervalSchedule,
    RRuleSchedule,
    Schedule,
    adjustments,
    clocks,
    filters,
)
from flowcore.schedules.clocks import Clock, ClockEvent, CronClock, DatesClock, IntervalClock

START = pendulum.datetime(2030, 1, 1)  # a Tuesday


def hours(*events: datetime) -> list[int]:
    return [e.hour for e in events]


def test_prefect1_paths() -> None:
    assert flowcore.schedules.Schedule is Schedule
    assert flowcore.schedules.clocks is clocks
    assert set(flowcore.schedules.__all__) >= {
        "CronSchedule",
        "IntervalSchedule",
        "RRuleSchedule",
        "Schedule",
    }


def test_clocks_must_be_a_list() -> None:
    with pytest.raises(TypeError, match="clocks should be a list of clocks."):
        Schedule(clocks=IntervalClock(timedelta(hours=1)))  # type: ignore[arg-type]


def test_next_merges_clocks_in_time_order() -> None:
    schedule = Schedule(
        clocks=[
            IntervalClock(timedelta(hours=3), start_date=START),
            IntervalClock(timedelta(hours=2), start_date=START),
        ]
    )
    assert hours(*schedule.next(5, after=START)) == [2, 3, 4, 6, 8]


def test_identical_events_count_once_and_differing_ones_twice() -> None:
    schedule = Schedule(
        clocks=[
            IntervalClock(timedelta(hours=12), start_date=START, parameter_defaults={"a": 1}),
            IntervalClock(timedelta(days=1), start_date=START),
            IntervalClock(timedelta(days=1), start_date=START),
        ]
    )
    events = schedule.next(4, after=START, return_events=True)
    assert [(e.start_time.day, e.start_time.hour, e.parameter_defaults) for e in events] == [
        (1, 12, {"a": 1}),
        (2, 0, {}),
        (2, 0, {"a": 1}),
        (2, 12, {"a": 1}),
    ]
    assert all(isinstance(e, ClockEvent) for e in events)
    assert all(isinstance(d, datetime) for d in schedule.next(2, after=START))


def test_filters_or_filters_and_not_filters() -> None:
    hourly = [IntervalClock(timedelta(hours=1), start_date=START)]
    weekday_nine_or_five = Schedule(
        clocks=hourly,
        filters=[filters.is_weekday],
        or_filters=[filters.at_time(time(9)), filters.at_time(time(17))],
        not_filters=[filters.is_day_of_week(2)],  # no Wednesdays
    )
    found = weekday_nine_or_five.next(5, after=START)
    assert [(d.format("ddd"), d.hour) for d in found] == [
        ("Tue", 9),
        ("Tue", 17),
        ("Thu", 9),
        ("Thu", 17),
        ("Fri", 9),
    ]


def test_adjustments_apply_in_order_after_filters() -> None:
    schedule = Schedule(
        clocks=[IntervalClock(timedelta(days=1), start_date=START)],
        filters=[filters.is_weekend],
        adjustments=[adjustments.add(timedelta(hours=1)), adjustments.next_weekday],
    )
    found = schedule.next(2, after=START)
    assert [d.format("ddd D HH") for d in found] == ["Mon 7 01", "Mon 7 01"]


def test_next_stops_after_10000_candidates() -> None:
    never = Schedule(clocks=[IntervalClock(timedelta(minutes=1))], filters=[lambda d: False])
    assert never.next(1) == []


def test_next_returns_fewer_when_the_clocks_run_out() -> None:
    schedule = Schedule(clocks=[DatesClock([START.add(days=1), START.add(days=2)])])
    assert len(schedule.next(5, after=START)) == 2
    assert schedule.next(0, after=START) == []
    assert schedule.next(1, after=START.add(days=3)) == []


def test_start_and_end_dates() -> None:
    schedule = Schedule(
        clocks=[
            IntervalClock(timedelta(hours=1), start_date=START.add(days=1)),
            IntervalClock(timedelta(hours=1), start_date=START, end_date=START.add(days=5)),
            IntervalClock(timedelta(hours=1)),
        ]
    )
    assert (schedule.start_date, schedule.end_date) == (START, START.add(days=5))
    assert Schedule(clocks=[IntervalClock(timedelta(hours=1))]).start_date is None


def test_a_custom_clock_in_a_schedule() -> None:
    class Noon(Clock):
        def events(self, after: Any = None) -> Iterator[ClockEvent]:
            day = pendulum.instance(after).start_of("day")
            while True:
                day = day.add(days=1)
                yield self._event(day.add(hours=12))

    schedule = Schedule(clocks=[Noon(labels=["x"])])
    (event,) = schedule.next(1, after=START, return_events=True)
    assert (event.start_time, event.labels) == (START.add(days=1, hours=12), ["x"])


# -- factories ------------------------------------------------------------------------------


def test_interval_schedule() -> None:
    schedule = IntervalSchedule(
        start_date=START, interval=timedelta(hours=6), end_date=START.add(hours=12)
    )
    (clock,) = schedule.clocks
    assert isinstance(clock, IntervalClock)
    assert hours(*schedule.next(5, after=START.subtract(seconds=1))) == [0, 6, 12]
    with pytest.raises(TypeError, match="needs an interval"):
        IntervalSchedule(start_date=START)


def test_cron_schedule() -> None:
    schedule = CronSchedule("0 9 * * 1-5", start_date=START, day_or=False)
    (clock,) = schedule.clocks
    assert isinstance(clock, CronClock) and clock.day_or is False
    assert [d.format("ddd HH") for d in schedule.next(4, after=START.add(days=2))] == [
        "Thu 09",
        "Fri 09",
        "Mon 09",
        "Tue 09",
    ]
    with pytest.raises(ValueError, match="Invalid cron string"):
        CronSchedule("61 * * * *")


def test_rrule_schedule() -> None:
    rule = rrule.rrule(rrule.WEEKLY, dtstart=datetime(2030, 1, 1), count=3)
    schedule = RRuleSchedule(rule)
    assert [d.day for d in schedule.next(5, after=pendulum.datetime(2029, 1, 1))] == [1, 8, 15]


# -- filters --------------------------------------------------------------------------------


def test_datetime_filters() -> None:
    moment = pendulum.datetime(2030, 6, 15, 12, 30)
    assert filters.on_datetime(moment)(moment)
    assert not filters.on_datetime(moment)(moment.add(seconds=1))
    between = filters.between_datetimes(moment, moment.add(days=1))
    assert between(moment) and between(moment.add(days=1)) and not between(moment.add(days=2))


def test_date_filters() -> None:
    june_15 = pendulum.datetime(2030, 6, 15)
    assert filters.on_date(6, 15)(june_15) and not filters.on_date(6, 16)(june_15)
    assert filters.between_dates(6, 1, 6, 30)(june_15)
    assert not filters.between_dates(7, 1, 12, 31)(june_15)
    winter = filters.between_dates(12, 1, 2, 28)  # wraps around the new year
    assert winter(pendulum.datetime(2030, 1, 10)) and winter(pendulum.datetime(2030, 12, 24))
    assert not winter(june_15)


def test_time_filters() -> None:
    moment = pendulum.datetime(2030, 6, 15, 23, 30)
    assert filters.at_time(time(23, 30))(moment)
    assert filters.between_times(time(22), time(23, 30))(moment)
    assert not filters.between_times(time(9), time(17))(moment)
    overnight = filters.between_times(time(22), time(2))
    assert overnight(moment) and overnight(pendulum.datetime(2030, 6, 15, 1))
    assert not overnight(pendulum.datetime(2030, 6, 15, 12))


def test_day_filters() -> None:
    saturday, monday = pendulum.datetime(2030, 6, 15), pendulum.datetime(2030, 6, 17)
    assert filters.is_weekend(saturday) and not filters.is_weekday(saturday)
    assert filters.is_weekday(monday) and not filters.is_weekend(monday)
    assert filters.is_day_of_week(5)(saturday) and filters.is_day_of_week(0)(monday)
    assert filters.is_month_start(pendulum.datetime(2030, 7, 1))
    assert not filters.is_month_start(monday)
    assert filters.is_month_end(pendulum.datetime(2030, 6, 30))
    assert filters.is_month_end(pendulum.datetime(2028, 2, 29))
    assert not filters.is_month_end(pendulum.datetime(2030, 2, 27))


def test_filters_read_the_local_time() -> None:
    evening_ny = pendulum.datetime(2030, 6, 14, 20, tz="America/New_York")  # Sat 00:00 UTC
    assert filters.is_weekday(evening_ny)
    assert filters.at_time(time(20))(evening_ny)


# -- adjustments ----------------------------------------------------------------------------


def test_adjustments() -> None:
    friday = pendulum.datetime(2030, 6, 14, 9)
    assert adjustments.next_weekday(friday) == friday
    assert adjustments.next_weekday(friday.add(days=1)) == friday.add(days=3)
    assert adjustments.add(timedelta(minutes=5))(friday) == friday.add(minutes=5)
    assert adjustments.add(timedelta(days=1))(datetime(2030, 1, 1)) == pendulum.datetime(2030, 1, 2)


def test_filter_functions_take_dt_by_keyword() -> None:
    # Prefect 1.4.1's filter functions name their argument `dt` (on_datetime's is `dt_2`)
    from flowcore.schedules import filters

    monday = pendulum.datetime(2024, 1, 1, 9)
    assert filters.is_day_of_week(0)(dt=monday)
    assert filters.at_time(monday.time())(dt=monday)
    assert filters.between_dates(1, 1, 1, 2)(dt=monday)
    assert filters.on_datetime(monday)(dt_2=monday)
    assert filters.is_weekday(dt=monday)


def test_the_hour_repeated_when_dst_ends_is_two_events_of_a_schedule() -> None:
    """An hourly clock fires at 01:00 EDT and again at 01:00 EST; a Schedule keeps both
    (as instants they are an hour apart, though Python compares datetimes of one time zone
    by wall time), in order, and still merges the same instant from two clocks."""
    start = pendulum.datetime(2024, 11, 3, 0, 0, tz="America/New_York")
    after = pendulum.datetime(2024, 11, 3, 0, 30, tz="America/New_York")
    clock = IntervalClock(timedelta(hours=1), start_date=start)
    times = Schedule(clocks=[clock]).next(4, after=after)
    assert [t.isoformat() for t in times] == [
        "2024-11-03T01:00:00-04:00",
        "2024-11-03T01:00:00-05:00",
        "2024-11-03T02:00:00-05:00",
        "2024-11-03T03:00:00-05:00",
    ]
    twice = Schedule(clocks=[clock, IntervalClock(timedelta(hours=1), start_date=start)])
    assert twice.next(4, after=after) == times
    assert ClockEvent(times[0]) < ClockEvent(times[1]) and ClockEvent(times[0]) != times[1]
