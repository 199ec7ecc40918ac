"""Schedule adjustments: ``fn(datetime) -> datetime`` applied, in order, to every event that
passed the filters.

>>> import pendulum
>>> from datetime import timedelta
>>> saturday = pendulum.datetime(2019, 1, 5, 9)
>>> next_weekday(saturday).isoformat(), add(timedelta(hours=1))(saturday).hour
('2019-01-07T09:00:00+00:00', 10)
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import pendulum

from flowcore.schedules import filters

__all__ = ["add", "next_weekday"]


def add(interval: timedelta) -> Callable[[datetime], datetime]:
    """Shift every event by ``interval``."""

    def adjustment_fn(dt: datetime) -> datetime:
        return pendulum.instance(dt) + interval

    return adjustment_fn


def next_weekday(dt: datetime) -> datetime:
    """Move an event on a weekend to the same time on the following Monday."""
    moved = pendulum.instance(dt)
    while not filters.is_weekday(moved):
        moved = moved.add(days=1)
    return moved
